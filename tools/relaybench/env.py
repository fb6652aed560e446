"""One run's context (`Env`) and its setup: tools installed (by tools/install-deps.sh --bench),
binaries built, certificates made, and what this build can do."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

from .catalog import MiB, ROOT
from .procs import Procs, log, out, sh


class Env:
    """What every measurement needs: the command line, a work directory, the processes started, where
    the binaries are, and notes for the report."""

    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.rounds = 1 if args.quick else args.rounds
        self.workdir = tempfile.mkdtemp(prefix="repeater-bench.")
        self.procs = Procs(self.workdir)
        self.bin = args.bin or os.path.join(ROOT, ".build", args.build_config)
        self.benchkit = os.path.join(self.workdir, "benchkit")
        self.certs = os.path.join(self.workdir, "certs")
        self.legacy = False
        self.legacy_note = ""
        self.client_legacy_takes_value = False
        # Largest message both runtime-manager and runtime-client accept (a get is one response).
        self.message_limit = 64 * MiB
        self.notes: list[str] = []
        # The relay processes of each path started last, as (label, pid), for their CPU time per operation.
        self.path_relays: dict[str, list[tuple[str, int]]] = {}

    def b(self, name: str) -> str:
        """A binary under test (repeaterd, muxcat, runtime-manager, runtime-client)."""
        return os.path.join(self.bin, name)

    @property
    def nio_relay(self) -> str:
        """The floor's relay (tools/nio-relay): from --bin if it has one, else from this checkout's build."""
        mine = os.path.join(self.bin, "nio-relay")
        if os.path.exists(mine):
            return mine
        return os.path.join(ROOT, ".build", self.args.build_config, "nio-relay")


def install(env: Env) -> None:
    """The bench's Debian packages (and matplotlib unless no plots are wanted), by the one installer."""
    cmd = ["bash", os.path.join(ROOT, "tools", "install-deps.sh"), "--bench"]
    if env.args.no_plots:
        cmd.append("--no-plots")
    log(" ".join(["tools/install-deps.sh"] + cmd[2:]))
    sh(cmd, env={**os.environ, "PYTHON": sys.executable})


def build(env: Env) -> None:
    args = env.args
    if not args.no_build:
        log(f"swift build -c {args.build_config}")
        sh(["swift", "build", "-c", args.build_config], cwd=ROOT)
    if not os.path.exists(env.nio_relay):
        log(f"swift build -c {args.build_config} --product nio-relay (the floor's relay is missing)")
        sh(["swift", "build", "-c", args.build_config, "--product", "nio-relay"], cwd=ROOT)
    log("go build tools/benchkit")
    sh(["go", "build", "-o", env.benchkit, "."], cwd=os.path.join(ROOT, "tools", "benchkit"),
       env={**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod", "GOCACHE": os.path.join(env.workdir, "gocache")})
    sh(["bash", os.path.join(ROOT, "tools", "gen-certs.sh"), env.certs], stdout=subprocess.DEVNULL)
    rhelp = out([env.b("repeaterd"), "--help"]) + "\n" + subprocess.run(
        [env.b("repeaterd"), "--help"], capture_output=True, text=True).stderr
    chelp = out([env.b("runtime-client"), "--help"])
    if "--legacy-http" in rhelp and "--legacy-http" in chelp:
        env.legacy = True
        env.client_legacy_takes_value = bool(re.search(r"--legacy-http\s*<", chelp))
        env.legacy_note = "LEGACY_HTTP measured (repeaterd --help lists --legacy-http)."
    else:
        env.legacy_note = ("LEGACY_HTTP skipped: this build's `repeaterd --help` does not list `--legacy-http` "
                           "(the old HTTP relay mode is not merged yet); rerun tools/bench once it is.")
    log(env.legacy_note)
    if "--max-message-bytes" in chelp:  # the client can raise its limit: a 256 MiB get fits
        env.message_limit = 320 * MiB
    log(f"message limit (runtime-manager and runtime-client --max-message-bytes): {env.message_limit // MiB} MiB")
    try:  # more ephemeral ports for the connection-rate rounds (TIME_WAIT); harmless when refused
        with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
            f.write("10000 65000")
    except OSError:
        pass
