#!/usr/bin/env python3
"""Runs every example command of README.md against real processes, so the README cannot drift.

Each ```sh block of README.md is run as written, one command at a time, in a scratch directory
with the debug binaries first on PATH: servers (muxcat listen, repeaterd, runtime-manager, openssl
s_server, nc -l, or a line ending in &) start in the background and are waited for until they
listen; every other command must exit 0 (or a status its recipe allows, with the reason).
What a block needs around it and cannot say itself (a peer behind the repeater, an input file,
traffic while a server runs) is in its recipe below, keyed by the block's first command. A block
without a recipe fails the run, and so does a recipe whose block is gone: add or fix the recipe
with the README. The only rewrite of README text is /run/ -> the scratch directory's run/.

    tools/readme_examples.py [--bin DIR]      (tools/test.sh runs it after the debug build)
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORTS = [3011, 6000, 8080, 4433, 9999, 9100]

RUNTIME_MANAGER = ("runtime-manager --listen {listen} --cert certs/runtime-manager.pem --key certs/runtime-manager.key "
                   "--client-ca certs/ca.pem --policy certs/policy.json")
REPEATER = "repeaterd --listen 127.0.0.1:3011 --backend 127.0.0.1:6000"
ECHO_PEER = "muxcat listen 127.0.0.1:6000 --echo"


@dataclass
class Recipe:
    """What one README block needs that the block does not say."""
    setup: list = field(default_factory=list)          # servers/commands before the block
    after: dict = field(default_factory=dict)          # command prefix -> commands run just after it
    before: dict = field(default_factory=dict)         # command prefix -> commands run just before it
    stdin: dict = field(default_factory=dict)          # command prefix -> text fed to it
    allow: dict = field(default_factory=dict)          # command prefix -> (statuses, why)
    skip: dict = field(default_factory=dict)           # command (or prefix*) -> why it is not run here
    checks: list = field(default_factory=list)         # shell checks after the block (must exit 0)
    in_root: bool = False                              # run in the repository, not the scratch dir


RECIPES = {
    "tools/demo.sh": Recipe(
        in_root=True,
        skip={"tools/test.sh": "this script runs inside tools/test.sh"}),
    "swift build": Recipe(
        in_root=True,
        skip={"swift build -c release": "a release build takes 6-14 minutes on 2 cores; tools/bench builds and runs it"}),
    "repeaterd --listen 127.0.0.1:3011 --backend 127.0.0.1:6000": Recipe(
        # Two ways to start it, not two repeaters: the first stops before the second starts.
        before={"repeaterd --listen 0.0.0.0:3011": ["@stop-servers"]}),
    "tools/gen-certs.sh certs/": Recipe(
        checks=["test -s certs/client.pem && test -s certs/policy.json"]),
    'C="--cert certs/client.pem': Recipe(
        setup=[RUNTIME_MANAGER.format(listen="127.0.0.1:6000"), REPEATER,
               "head -c 9437184 /dev/urandom > big.bin", "head -c 1000 /dev/urandom > more.bin"],
        checks=["cat big.bin more.bin | cmp - copy.bin"]),
    "muxcat listen 127.0.0.1:6000 -v": Recipe(checks=["grep -q '] hello' .server-0.out"]),
    "muxcat listen 127.0.0.1:6000 --echo -v": Recipe(after={"muxcat listen": [REPEATER]}),
    "muxcat listen 127.0.0.1:6000 --forward 127.0.0.1:8080 -v": Recipe(
        setup=["python3 -m http.server 8080 --bind 127.0.0.1"]),
    "openssl req -x509": Recipe(
        after={"muxcat listen": [REPEATER]},
        stdin={"openssl s_client": "hello through the repeater\n"},
        checks=["grep -q 'hello through the repeater' .server-0.out"]),
    "muxcat listen 127.0.0.1:6000 --exec": Recipe(
        setup=["rm -f /tmp/stream-*.bin"],
        after={"muxcat listen": [REPEATER, "printf 'recorded\\n' | nc -N 127.0.0.1 3011 | grep -q recorded"]},
        checks=["cat /tmp/stream-*-*.bin | grep -q recorded"]),
    "muxcat connect 127.0.0.1:6000 -v < request.bin": Recipe(
        setup=[ECHO_PEER, "mkdir -p /run", RUNTIME_MANAGER.format(listen="unix:/run/runtime-manager.sock"),
               "printf 'ping\\n' > request.bin"],
        checks=["cmp request.bin reply.bin"]),
    "nc -l 127.0.0.1 9999 > /tmp/clienthello.bin &": Recipe(
        setup=[RUNTIME_MANAGER.format(listen="127.0.0.1:6000")],
        allow={"timeout 2 openssl s_client": ((124,), "nc never answers the ClientHello it records, so timeout ends s_client")},
        before={"muxcat connect 127.0.0.1:6000 < /tmp/clienthello.bin": ["test -s /tmp/clienthello.bin"]}),
    "repeaterd --listen 127.0.0.1:3011 --backend 127.0.0.1:6000\nopenssl s_client": Recipe(
        setup=[RUNTIME_MANAGER.format(listen="127.0.0.1:6000")]),
    "head -c 1000000 /dev/urandom | muxcat connect 127.0.0.1:6000 --streams 50": Recipe(
        setup=[ECHO_PEER]),
    "muxcat listen 127.0.0.1:6000 --echo --capture /tmp/link.mxc": Recipe(
        setup=["rm -f /tmp/link.mxc"],
        before={"muxcat decode /tmp/link.mxc": [
            "printf 'captured\\n' | muxcat connect 127.0.0.1:6000 | grep -q captured", "@interrupt-servers"]},
        checks=["muxcat decode /tmp/link.mxc | grep -q 'streams: 1 opened, 1 closed'"]),
    "nc -l 127.0.0.1 6000 > /tmp/from-repeater.bin &": Recipe(),
    "repeaterd --backend 127.0.0.1:6000 --log-format json 2> repeaterd.log &": Recipe(
        checks=["python3 -c 'import json; [json.loads(line) for line in open(\"repeaterd.log\")]'"]),
    "repeaterd --backend 127.0.0.1:6000 --admin 127.0.0.1:9100 &": Recipe(
        setup=[RUNTIME_MANAGER.format(listen="127.0.0.1:6000")],
        checks=["curl -s 127.0.0.1:9100/readyz | grep -qx ready",
                "curl -s 127.0.0.1:9100/metrics | grep -q '^repeater_links_up [1-9]'",
                "curl -s 127.0.0.1:9100/status.json | jq -e '.links[0].state == \"up\"'"]),
    "tools/bench              # the full run": Recipe(
        in_root=True,
        skip={"tools/bench": "the full run takes ~40 minutes; tools/bench-smoke.sh runs the quick one in tools/test.sh",
              "tools/bench --quick": "tools/bench-smoke.sh runs the quick bench in tools/test.sh",
              "tools/bench --quick --debug": "tools/bench-smoke.sh runs exactly this in tools/test.sh",
              "tools/bench --only *": "minutes per measurement on release binaries; tools/bench-smoke.sh runs every measurement on the debug build",
              "tools/install-deps.sh --bench *": "tools/bench-smoke.sh installs the bench's tools in tools/test.sh"}),
}


def sh_blocks(readme):
    """(line number, [commands]) of every ```sh block; continuation lines joined."""
    blocks, current, start = [], None, 0
    for number, line in enumerate(open(readme, encoding="utf-8"), 1):
        line = line.rstrip("\n")
        if current is None and line.strip() == "```sh":
            current, start = [], number
        elif current is not None and line.strip() == "```":
            blocks.append((start, current))
            current = None
        elif current is not None:
            current.append(line)
    result = []
    for start, lines in blocks:
        commands, pending = [], ""
        for line in lines:
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1].rstrip() + " "
                continue
            full = (pending + line.strip()).strip()
            pending = ""
            if full and not full.startswith("#"):
                commands.append(full)
        result.append((start, commands))
    return result


def strip_comment(command):
    """Drops a trailing `# ...` that is not inside quotes."""
    quote = None
    for index, char in enumerate(command):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or command[index - 1].isspace()):
            return command[:index].rstrip()
    return command


SERVER = re.compile(r"^(muxcat listen|repeaterd|runtime-manager|openssl s_server|nc -l|python3 -m http\.server)\b")


def listen_address(command):
    """Where a server command listens: ('tcp', port) or ('unix', path), or None."""
    patterns = [r"^muxcat listen (\S+)", r"--listen (\S+)", r"-accept (\S+)", r"^nc -l \S+ (\d+)", r"http\.server (\d+)"]
    for pattern in patterns:
        match = re.search(pattern, command)
        if match:
            value = match.group(1)
            if value.startswith("unix:"):
                return ("unix", value[5:])
            return ("tcp", int(value.rsplit(":", 1)[-1]))
    if command.startswith("repeaterd"):
        return ("tcp", 3011)
    if command.startswith("runtime-manager"):
        return ("tcp", 6000)
    return None


def listening(address, cwd):
    kind, where = address
    if kind == "tcp":
        out = subprocess.run(["ss", "-Hltn", f"sport = :{where}"], capture_output=True, text=True).stdout
        return out.strip() != ""
    path = where if os.path.isabs(where) else os.path.join(cwd, where)
    out = subprocess.run(["ss", "-Hlx"], capture_output=True, text=True).stdout
    return path in out


class Block:
    def __init__(self, line, commands, recipe, work, env):
        self.line, self.commands, self.recipe = line, commands, recipe
        self.cwd = ROOT if recipe.in_root else work
        self.logs = work
        # The only change to README text: /run/ (root's) becomes the scratch directory's run/.
        self.rewrite = lambda command: command.replace("/run/", os.path.join(work, "run") + "/").replace(
            "mkdir -p /run", "mkdir -p " + os.path.join(work, "run"))
        self.env = env
        self.assignments = []  # `C="..."` lines: each command runs in its own shell, so they are repeated
        self.servers = []
        self.failures = []

    def fail(self, message):
        self.failures.append(message)
        print(f"  FAIL {message}", flush=True)

    def start_server(self, command):
        command = command.rstrip("&").strip()
        index = len(self.servers)
        out = open(os.path.join(self.logs, f".server-{index}.out"), "wb")
        err_path = os.path.join(self.logs, f".server-{index}.err")
        process = subprocess.Popen(
            ["bash", "-c", command], cwd=self.cwd, env=self.env,
            stdin=subprocess.PIPE, stdout=out, stderr=open(err_path, "wb"), start_new_session=True)
        self.servers.append((command, process))
        print(f"  bg   {command}", flush=True)
        address = listen_address(command)
        deadline = time.time() + 30
        while address and not listening(address, self.cwd):
            if process.poll() is not None:
                self.fail(f"`{command}` exited with status {process.returncode} before listening: {self.tail(err_path)}")
                return
            if time.time() > deadline:
                self.fail(f"`{command}` is not listening on {address} after 30 s")
                return
            time.sleep(0.05)
        if command.startswith("repeaterd"):
            # Its clients are closed while its link is down: wait for the link when a peer listens.
            backend = re.search(r"--backend (\S+)", command)
            target = backend.group(1) if backend else "127.0.0.1:6000"
            peer = ("unix", target[5:]) if target.startswith("unix:") else ("tcp", int(target.rsplit(":", 1)[-1]))
            if listening(peer, self.cwd):
                deadline = time.time() + 15
                while "link up" not in open(err_path, errors="replace").read() and time.time() < deadline:
                    time.sleep(0.05)

    @staticmethod
    def tail(path):
        try:
            return open(path, errors="replace").read()[-400:].strip()
        except OSError:
            return ""

    def run(self, command, stdin_text=None, allowed=(0,), why=None):
        print(f"  run  {command}", flush=True)
        script = "; ".join(self.assignments + [command])
        try:
            result = subprocess.run(
                ["bash", "-c", script], cwd=self.cwd, env=self.env, capture_output=True, timeout=300,
                input=(stdin_text or "").encode(), start_new_session=True)
        except subprocess.TimeoutExpired:
            self.fail(f"`{command}` did not finish within 300 s")
            return
        if result.returncode not in allowed:
            output = (result.stderr or result.stdout).decode(errors="replace")[-600:].strip()
            self.fail(f"`{command}` exited with status {result.returncode}: {output}")
        elif result.returncode != 0:
            print(f"       status {result.returncode} allowed: {why}", flush=True)

    def signal_servers(self, number, wait):
        for command, process in self.servers:
            if process.poll() is None:
                os.killpg(process.pid, number)
        for command, process in self.servers:
            try:
                process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                if number == signal.SIGINT:
                    self.fail(f"`{command}` did not exit within {wait} s of Ctrl-C")
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def step(self, command):
        """A recipe's command: an action, a server, or a command that must succeed."""
        command = self.rewrite(command)
        if command == "@interrupt-servers":
            self.signal_servers(signal.SIGINT, 10)
        elif command == "@stop-servers":
            self.stop()
        elif SERVER.match(command) or command.endswith("&"):
            self.start_server(command)
        else:
            self.run(command)

    @staticmethod
    def matches(key, command):
        return command.startswith(key[:-1]) if key.endswith("*") else command == key

    def execute(self):
        for command in self.recipe.setup:
            self.step(command)
        for command in (self.rewrite(strip_comment(c)) for c in self.commands):
            if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", command):
                self.assignments.append(command)
                continue
            skip = next((why for key, why in self.recipe.skip.items() if self.matches(key, command)), None)
            if skip:
                print(f"  skip {command}: {skip}", flush=True)
                continue
            for prefix, extras in self.recipe.before.items():
                if command.startswith(prefix):
                    for extra in extras:
                        self.step(extra)
            if SERVER.match(command) or command.endswith("&"):
                self.start_server(command)
            else:
                stdin_text = next((text for prefix, text in self.recipe.stdin.items() if command.startswith(prefix)), None)
                allowed, why = next(((statuses, reason) for prefix, (statuses, reason) in self.recipe.allow.items()
                                     if command.startswith(prefix)), ((), None))
                self.run(command, stdin_text, (0,) + tuple(allowed), why)
            for prefix, extras in self.recipe.after.items():
                if command.startswith(prefix):
                    for extra in extras:
                        self.step(extra)
        for check in self.recipe.checks:
            self.run(check)
        self.stop()

    def stop(self):
        self.signal_servers(signal.SIGTERM, 15)
        self.servers = []
        deadline = time.time() + 15
        while any(listening(("tcp", port), self.cwd) for port in PORTS) and time.time() < deadline:
            time.sleep(0.1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=os.path.join(ROOT, ".build", "debug"))
    parser.add_argument("--only", help="run only blocks whose first command starts with this")
    args = parser.parse_args()
    for port in PORTS:
        if listening(("tcp", port), ROOT):
            sys.exit(f"readme-examples: port {port} is in use; the README's examples need 3011, 6000, 8080, 4433, 9999 and 9100 free")
    work = tempfile.mkdtemp(prefix="readme-examples.")
    os.symlink(os.path.join(ROOT, "tools"), os.path.join(work, "tools"))
    env = dict(os.environ, PATH=os.path.abspath(args.bin) + os.pathsep + os.environ.get("PATH", ""))
    # Blocks before the README's own gen-certs step start a runtime manager too.
    subprocess.run(["bash", "tools/gen-certs.sh", "certs/"], cwd=work, check=True, capture_output=True)
    blocks = sh_blocks(os.path.join(ROOT, "README.md"))
    used, failures = set(), []
    for line, commands in blocks:
        text = "\n".join(commands)
        key = max((k for k in RECIPES if text.startswith(k)), key=len, default=None)
        if key is None:
            failures.append(f"README.md:{line}: no recipe in tools/readme_examples.py for the block starting `{commands[0] if commands else ''}`")
            print(f"FAIL {failures[-1]}")
            continue
        used.add(key)
        if args.only and not key.startswith(args.only):
            continue
        print(f"README.md:{line}", flush=True)
        block = Block(line, commands, RECIPES[key], work, env)
        block.execute()
        failures += [f"README.md:{line}: {f}" for f in block.failures]
    for key in RECIPES:
        if key not in used:
            failures.append(f"tools/readme_examples.py: the recipe for `{key.splitlines()[0]}` matches no README block any more")
    shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"\nreadme-examples: {len(failures)} failed:\n" + "\n".join(failures))
        sys.exit(1)
    print(f"\nreadme-examples: every ```sh block of README.md ran ({len(blocks)} blocks)")


if __name__ == "__main__":
    main()
