"""Section 2: the Nagle trap — section 1's ping-pong with two messages per exchange (sockperf -b 2),
which a relay without TCP_NODELAY answers ~40 ms late."""
from __future__ import annotations

from ..env import Env
from ..results import PingPongResult
from . import latency


def run(env: Env, paths) -> PingPongResult:
    return latency.run(env, paths, burst=2)
