#!/usr/bin/env python3
"""What each module adds to a static binary: symbol sizes from `nm --size-sort -S`, grouped by owner.

    tools/binary-sizes.py .build-package/release/{nio-relay,repeaterd,runtime-manager,runtime-client,muxcat}

A Swift symbol belongs to the module its mangled name starts with (`$s7NIOCore…` → NIOCore); C and C++
symbols to a library guessed from their prefix (BoringSSL's are `CNIOBoringSSL_…` or in `bssl::`); what
is left is "other (C/C++ runtime, unnamed)". Sizes are of the symbols only (no section padding, no
symbol table), so a column sums to less than the file; the first binary given is the floor the others are
compared with. Issue 45: docs/bench/NOTES.md keeps the table this prints.
"""
from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict

SWIFT = re.compile(r"^\$s(s|S[a-zA-Z]|(\d+)([A-Za-z_][A-Za-z0-9_]*))")
C_PREFIXES = [("CNIOBoringSSL", "BoringSSL (NIOSSL)"), ("bssl::", "BoringSSL (NIOSSL)"), ("mlkem::", "BoringSSL (NIOSSL)"),
              ("CCryptoBoringSSL", "BoringSSL (swift-crypto)"), ("icudt", "ICU data"), ("swift_", "Swift runtime"),
              ("swift::", "Swift runtime"), ("_swift", "Swift runtime"), ("__swift", "Swift runtime"),
              ("CNIO", "NIO C shims"), ("c_nio", "NIO C shims")]


def owner(symbol: str) -> str:
    m = SWIFT.match(symbol)
    if m:
        if m.group(1) == "s" or (m.group(1) or "").startswith("S"):
            return "Swift stdlib"
        return m.group(3)[: int(m.group(2))]
    for prefix, name in C_PREFIXES:
        if symbol.startswith(prefix):
            return name
    return "other (C/C++ runtime, unnamed)"


def sizes(path: str) -> dict[str, int]:
    out = subprocess.run(["nm", "--size-sort", "-S", "-C", "--no-demangle", path], capture_output=True, text=True,
                         check=True).stdout
    total: dict[str, int] = defaultdict(int)
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4:
            total[owner(parts[3])] += int(parts[1], 16)
    return total


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    tables = {p.rsplit("/", 1)[-1]: sizes(p) for p in paths}
    names = list(tables)
    owners = sorted({o for t in tables.values() for o in t}, key=lambda o: -max(t.get(o, 0) for t in tables.values()))
    mib = 1024 * 1024
    print("| owner | " + " | ".join(f"{n} MiB" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for o in owners:
        row = [tables[n].get(o, 0) for n in names]
        if max(row) < 64 * 1024:
            continue
        print(f"| {o} | " + " | ".join(f"{v / mib:.2f}" for v in row) + " |")
    print("| **all symbols** | " + " | ".join(f"**{sum(tables[n].values()) / mib:.2f}**" for n in names) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
