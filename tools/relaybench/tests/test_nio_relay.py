"""nio-relay (tools/nio-relay) against real sockets: it is the floor every figure is read against, so it
must relay correctly — bytes in order, half-close both ways, backpressure. Skipped when it is not built
(`swift build --product nio-relay`; tools/test.sh builds it before running these)."""
import os
import socket
import subprocess
import threading
import time

import pytest

from relaybench.catalog import ROOT
from relaybench.procs import free_port, wait_port

BIN = next((p for p in (os.environ.get("NIO_RELAY"), os.path.join(ROOT, ".build", "debug", "nio-relay"),
                        os.path.join(ROOT, ".build", "release", "nio-relay")) if p and os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(BIN is None, reason="nio-relay is not built")
MiB = 1024 * 1024


@pytest.fixture
def server():
    """A listening socket; the test accepts from it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s
    s.close()


@pytest.fixture
def relay(server):
    """nio-relay in front of `server`; yields its port."""
    port = free_port()
    p = subprocess.Popen([BIN, "--listen", f"127.0.0.1:{port}", "--target", f"127.0.0.1:{server.getsockname()[1]}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        # wait_port's probe connection reached the server: accept and drop it.
        probe, _ = server.accept()
        probe.close()
        yield port, p
    finally:
        p.terminate()
        p.wait(timeout=5)


def connect(port):
    c = socket.create_connection(("127.0.0.1", port), timeout=20)
    return c


def recv_all(sock) -> bytes:
    chunks = []
    while True:
        b = sock.recv(1 << 20)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def test_bytes_arrive_in_order_both_ways(server, relay):
    port, _ = relay
    data = os.urandom(8 * MiB)
    c = connect(port)
    s, _ = server.accept()
    s.settimeout(20)
    t = threading.Thread(target=lambda: (c.sendall(data), c.shutdown(socket.SHUT_WR)))
    t.start()
    got = recv_all(s)
    t.join()
    assert got == data
    t = threading.Thread(target=lambda: (s.sendall(data[::-1]), s.shutdown(socket.SHUT_WR)))
    t.start()
    assert recv_all(c) == data[::-1]
    t.join()
    c.close()
    s.close()


def test_client_half_close_then_a_long_answer_is_not_cut(server, relay):
    # The client sends its request and FIN; the server answers 16 MiB and closes; the client reads slowly
    # through a small receive buffer, so the relay still holds queued bytes for it when the server's EOF
    # comes. Every byte must arrive before the client's EOF: on a socket whose input is already closed,
    # close(mode: .output) becomes a full close that would drop the queued bytes.
    port, _ = relay
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    c.settimeout(20)
    c.connect(("127.0.0.1", port))
    s, _ = server.accept()
    s.settimeout(20)
    c.sendall(b"request")
    c.shutdown(socket.SHUT_WR)
    assert recv_all(s) == b"request"
    answer = os.urandom(16 * MiB)
    t = threading.Thread(target=lambda: (s.sendall(answer), s.close()))
    t.start()
    chunks = []
    while True:
        b = c.recv(16384)
        if not b:
            break
        chunks.append(b)
        time.sleep(0.0002)
    t.join()
    got = b"".join(chunks)
    assert len(got) == len(answer) and got == answer


def test_server_half_close_keeps_the_other_direction_open(server, relay):
    port, _ = relay
    c = connect(port)
    s, _ = server.accept()
    s.settimeout(20)
    s.sendall(b"banner")
    s.shutdown(socket.SHUT_WR)
    assert recv_all(c) == b"banner"  # EOF reaches the client
    c.sendall(b"still talking")
    c.shutdown(socket.SHUT_WR)
    assert recv_all(s) == b"still talking"


def test_a_server_that_does_not_read_stops_the_client(server, relay):
    # Backpressure: while the server reads nothing, the relay must stop reading from the client, so the
    # client can only push what the socket buffers and NIO's write watermark hold, not everything.
    port, p = relay
    c = connect(port)
    s, _ = server.accept()
    c.setblocking(False)
    sent, chunk, deadline = 0, b"x" * 65536, time.time() + 3
    while time.time() < deadline:
        try:
            sent += c.send(chunk)
        except BlockingIOError:
            time.sleep(0.05)
    assert sent < 48 * MiB, f"the client pushed {sent} bytes into a server that reads nothing"
    c.setblocking(True)
    s.settimeout(20)
    got = 0
    c.shutdown(socket.SHUT_WR)
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        got += len(b)
    assert got == sent


def test_a_reset_closes_the_other_side(server, relay):
    port, _ = relay
    c = connect(port)
    s, _ = server.accept()
    s.settimeout(20)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # RST
    assert recv_all(s) == b""
