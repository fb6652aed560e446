"""Section 9: the micro-benchmarks of the Benchmarks/ package (ordo-one/benchmark), condensed."""
from __future__ import annotations

import os
import re
import subprocess

from ..catalog import ROOT
from ..env import Env
from ..procs import log
from ..results import MicroResult


def condense(markdown: str) -> str:
    """ordo-one/benchmark's markdown as one row per benchmark: p50 wall clock, p50 mallocs, samples."""
    rows, name, cur = [], None, {}
    for line in markdown.splitlines():
        if line.startswith("### "):
            if name:
                rows.append((name, cur))
            name, cur = line[4:].strip(), {}
        elif line.startswith("|") and name:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) >= 4 and cells[0].startswith("Time (wall clock)"):
                unit = re.search(r"\((\w+)\) \*?$", cells[0])
                cur["wall"] = f"{cells[3]} {unit.group(1) if unit else ''}".strip()
                cur["samples"] = cells[-1]
            elif len(cells) >= 4 and cells[0].startswith("Malloc (total)"):
                cur["mallocs"] = cells[3]
    if name:
        rows.append((name, cur))
    table = ["| benchmark | wall clock p50 | mallocs p50 | samples |", "|---|---|---|---|"]
    table += [f"| {n} | {c.get('wall', '—')} | {c.get('mallocs', '—')} | {c.get('samples', '—')} |" for n, c in rows]
    return "\n".join(table)


def run(env: Env, paths=None) -> MicroResult:
    log("  swift package benchmark (Benchmarks/; first build takes minutes)")
    p = subprocess.run(["swift", "package", "--allow-writing-to-package-directory", "benchmark",
                        "--format", "markdown", "--no-progress"],
                       cwd=os.path.join(ROOT, "Benchmarks"), capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip()[-800:] or p.stdout.strip()[-800:])
    return MicroResult(markdown=condense(p.stdout), full=p.stdout)
