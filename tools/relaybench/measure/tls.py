"""Section 5: TLS file transfers (runtime-client put/get) directly, through the repeater and the old
HTTP relay; `TLSSetup` is shared with section 6."""
from __future__ import annotations

import hashlib
import os
import subprocess
import time

from ..catalog import MiB
from ..env import Env
from ..procs import free_port, log, threads_cpu_seconds, wait_port
from ..results import SessionCostRound, TLSResult, TLSSessions, TLSSize, TransferRound
from ..rounds import rounds_over
from ..summary import summarize_session_costs, summarize_transfers


class TLSSetup:
    """runtime-manager (link + --direct), repeaterd in front of its link, repeaterd --legacy-http if available;
    with `access_log`, a second runtime-manager and repeaterd, both under `--access-log --log-format json`
    (REPEATER_ACCESSLOG: what the two access lines cost beside REPEATER)."""

    def __init__(self, env: Env, access_log: bool = False):
        self.env = env
        c = env.certs
        self.link, self.direct = free_port(), free_port()
        manager_args = ["--cert", f"{c}/runtime-manager.pem", "--key", f"{c}/runtime-manager.key", "--client-ca",
                        f"{c}/ca.pem", "--policy", f"{c}/policy.json", "--log-level", "warning",
                        "--max-store-bytes", str(2048 * MiB), "--max-message-bytes", str(env.message_limit)]
        manager = env.procs.start("runtime-manager", [
            env.b("runtime-manager"), "--listen", f"127.0.0.1:{self.link}", "--direct", f"127.0.0.1:{self.direct}",
            *manager_args])
        self.procs = [manager]
        wait_port(self.link)
        wait_port(self.direct)
        self.repeater = free_port()
        cmd = [env.b("repeaterd"), "--listen", f"127.0.0.1:{self.repeater}", "--backend", f"127.0.0.1:{self.link}",
               "--log-level", "warning"]
        self.legacy = None
        if env.legacy:
            self.legacy = free_port()
            cmd += ["--legacy-http", f"127.0.0.1:{self.legacy}"]
        self.procs.append(env.procs.start("repeaterd-tls", cmd))
        wait_port(self.repeater)
        if self.legacy:
            wait_port(self.legacy)
        self.ports = {"DIRECT": self.direct, "REPEATER": self.repeater}
        # The runtime manager serving each path (its CPU per transfer is read from /proc).
        self.managers = {"DIRECT": manager.pid, "REPEATER": manager.pid}
        if self.legacy:
            self.ports["LEGACY_HTTP"] = self.legacy
            self.managers["LEGACY_HTTP"] = manager.pid
        if access_log:
            link, front = free_port(), free_port()
            logged = env.procs.start("runtime-manager-accesslog", [
                env.b("runtime-manager"), "--listen", f"127.0.0.1:{link}", *manager_args,
                "--access-log", "--log-format", "json"])
            wait_port(link)
            self.procs += [logged, env.procs.start("repeaterd-accesslog", [
                env.b("repeaterd"), "--listen", f"127.0.0.1:{front}", "--backend", f"127.0.0.1:{link}",
                "--log-level", "warning", "--access-log", "--log-format", "json"])]
            wait_port(front)
            self.ports["REPEATER_ACCESSLOG"] = front
            self.managers["REPEATER_ACCESSLOG"] = logged.pid
        time.sleep(0.3)

    def paths(self) -> list[str]:
        return list(self.ports)

    def client(self, path: str, port: int, *args) -> float:
        """Runs one runtime-client command through PATH; returns its wall-clock seconds."""
        c = self.env.certs
        cmd = [self.env.b("runtime-client"), "--connect", f"127.0.0.1:{port}", "--cert", f"{c}/client.pem",
               "--key", f"{c}/client.key", "--ca", f"{c}/ca.pem", "--quiet"]
        if self.env.message_limit > 64 * MiB:
            cmd += ["--max-message-bytes", str(self.env.message_limit)]
        if path == "LEGACY_HTTP":
            cmd += (["--legacy-http", f"127.0.0.1:{port}"] if self.env.client_legacy_takes_value else ["--legacy-http"])
        t0 = time.perf_counter()
        p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=900)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"runtime-client {args[0]} failed: {p.stderr.strip()[-300:]}")
        return dt

    def stop(self) -> None:
        self.env.procs.stop(self.procs)


def make_file(env: Env, mib: int) -> tuple[str, str]:
    """A file of random bytes (made once per run) and its SHA-256."""
    path = os.path.join(env.workdir, f"input-{mib}.bin")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(os.urandom(mib * MiB))
    with open(path, "rb") as f:
        return path, hashlib.sha256(f.read()).hexdigest()


def run(env: Env, paths=None) -> TLSResult:
    sizes = [1, 4] if env.quick else [32, 256]
    setup = TLSSetup(env, access_log="REPEATER_ACCESSLOG" in (paths or []))
    results = {}
    note = None
    # `get` returns a file as one response message: both ends must accept a message that large
    # (runtime-manager and runtime-client --max-message-bytes; an older client has no such flag).
    get_limit = env.message_limit - MiB
    if max(sizes) * MiB > get_limit:
        note = (f"TLS transfer: `get` of files over {get_limit // MiB} MiB is not measured: a file comes "
                "back as one response message and this runtime-client cannot raise its 64 MiB message "
                "limit (no --max-message-bytes), so `get` of 256 MiB fails on every path.")
    try:
        for mib in sizes:
            src, digest = make_file(env, mib)
            dst = os.path.join(env.workdir, f"output-{mib}.bin")
            rounds = env.rounds if mib <= 64 else max(1, env.rounds - 1)

            def one(n, mib=mib, src=src, dst=dst, digest=digest) -> TransferRound:
                port = setup.ports[n]
                name = f"bench/{n}-{mib}.bin"
                manager_cpu = threads_cpu_seconds(setup.managers[n])
                put = setup.client(n, port, "put", src, name)
                if mib * MiB > get_limit:
                    return TransferRound(put_s=put, put_mibps=mib / put,
                                         endpoint_cpu_s=threads_cpu_seconds(setup.managers[n]) - manager_cpu)
                if os.path.exists(dst):
                    os.remove(dst)
                get = setup.client(n, port, "get", name, dst)
                with open(dst, "rb") as f:
                    if hashlib.sha256(f.read()).hexdigest() != digest:
                        raise RuntimeError("the file came back different")
                return TransferRound(put_s=put, get_s=get, put_mibps=mib / put, get_mibps=mib / get,
                                     endpoint_cpu_s=threads_cpu_seconds(setup.managers[n]) - manager_cpu)

            log(f"  {mib} MiB put/get")
            res = rounds_over(env, setup.paths(), one, rounds)
            results[f"{mib} MiB"] = TLSSize(raw=res, summary=summarize_transfers(res))
        sessions = short_sessions(env, setup)
    finally:
        setup.stop()
    return TLSResult(sizes=results, rounds=env.rounds, paths=setup.paths(), note=note, sessions=sessions)


def short_sessions(env: Env, setup: TLSSetup) -> TLSSessions:
    """Short sessions through the repeater paths (`runtime-client policy-hash`, one after the other):
    runtime-manager's CPU per session, where a per-session cost such as its access line shows."""
    count = 10 if env.quick else 200
    paths = [n for n in setup.paths() if n.startswith("REPEATER")]

    def one(n) -> SessionCostRound:
        before = threads_cpu_seconds(setup.managers[n])
        t0 = time.perf_counter()
        for _ in range(count):
            setup.client(n, setup.ports[n], "policy-hash")
        wall = time.perf_counter() - t0
        return SessionCostRound(sessions=count, wall_s=wall, endpoint_cpu_s=threads_cpu_seconds(setup.managers[n]) - before)

    log(f"  {count} short sessions (policy-hash)")
    res = rounds_over(env, paths, one, env.rounds)
    return TLSSessions(raw=res, summary=summarize_session_costs(res))
