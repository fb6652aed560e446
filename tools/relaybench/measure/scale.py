"""Section 8: 10,000 concurrent sessions through one repeaterd (benchkit scale)."""
from __future__ import annotations

import json
import subprocess
import time

from ..env import Env
from ..procs import free_port, wait_port
from ..results import ScaleResult, record


def run(env: Env, paths=None) -> ScaleResult:
    n = 300 if env.quick else 10000
    link = free_port()
    m = env.procs.start("muxcat-echo", [env.b("muxcat"), "listen", f"127.0.0.1:{link}", "--echo",
                                        "--log-level", "warning"])
    wait_port(link)
    front = free_port()
    r = env.procs.start("repeaterd-scale", [env.b("repeaterd"), "--listen", f"127.0.0.1:{front}", "--backend",
                                            f"127.0.0.1:{link}", "--log-level", "warning", "--max-sessions", "16384"])
    wait_port(front)
    time.sleep(0.5)
    try:
        p = subprocess.run([env.benchkit, "scale", "-target", f"127.0.0.1:{front}", "-n", str(n), "-pid", str(r.pid),
                            "-pings", "500" if env.quick else "5000"], capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(p.stderr.strip()[-300:])
        return record(ScaleResult, json.loads(p.stdout))
    finally:
        env.procs.stop([r, m])
