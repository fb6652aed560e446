import pytest

from relaybench.catalog import endpoint_paths, floor_for, hol_paths, select_paths


def test_default_paths_put_each_floor_beside_what_it_is_read_against():
    paths = select_paths(None, None)
    assert paths[0] == "DIRECT"
    assert paths.index("NIO_1TO1x2") == paths.index("REPEATER") + 1
    assert paths.index("NIO_1TO1") == paths.index("HAPROXY") + 1


def test_paths_keep_report_order_and_direct():
    assert select_paths(["NIO_1TO1", "REPEATER"], None) == ["DIRECT", "REPEATER", "NIO_1TO1"]
    with pytest.raises(ValueError, match="NIO"):
        select_paths(["NIO"], None)


def test_baseline_goes_right_after_repeater():
    assert select_paths(["REPEATER", "NIO_1TO1x2"], "/b") == ["DIRECT", "REPEATER", "REPEATER_BEFORE", "NIO_1TO1x2"]


def test_repeater_admin_is_measured_only_when_asked_for_beside_repeater():
    assert "REPEATER_ADMIN" not in select_paths(None, None)
    assert select_paths(["REPEATER", "REPEATER_ADMIN", "NIO_1TO1"], None) == [
        "DIRECT", "REPEATER", "REPEATER_ADMIN", "NIO_1TO1"]
    assert select_paths(["REPEATER", "REPEATER_ADMIN"], "/b") == ["DIRECT", "REPEATER", "REPEATER_BEFORE", "REPEATER_ADMIN"]
    assert floor_for("REPEATER_ADMIN") == "NIO_1TO1x2"
    assert select_paths(["REPEATER", "REPEATER_ADMIN", "REPEATER_STATUS"], None) == [
        "DIRECT", "REPEATER", "REPEATER_ADMIN", "REPEATER_STATUS"]
    assert floor_for("REPEATER_STATUS") == "NIO_1TO1x2"
    assert select_paths(["HAPROXY"], "/b") == ["DIRECT", "REPEATER_BEFORE", "HAPROXY"]


def test_endpoint_paths_are_one_hop():
    assert endpoint_paths(select_paths(None, None), None) == ["DIRECT", "REPEATER_1HOP", "NIO_1TO1", "HAPROXY",
                                                               "NGINX", "SOCAT"]
    assert endpoint_paths(["DIRECT", "NIO_1TO1x2", "HAPROXYx2"], None) == ["DIRECT"]
    assert endpoint_paths(["DIRECT", "REPEATER"], "/b") == ["DIRECT", "REPEATER_1HOP", "REPEATER_1HOP_BEFORE"]


def test_floor_for_and_hol_paths():
    assert floor_for("REPEATER") == "NIO_1TO1x2"
    assert floor_for("REPEATER_1HOP") == "NIO_1TO1"
    assert floor_for("DIRECT") is None
    # HAPROXYx2 is the anchor of the head-of-line target (issue 21); NIO_1TO1x2 the floor with one loop per hop.
    assert hol_paths(select_paths(None, None)) == ["DIRECT", "REPEATER", "NIO_1TO1x2", "HAPROXY", "HAPROXYx2", "NGINX"]
