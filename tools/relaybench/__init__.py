"""relaybench: the code of tools/bench, which measures every relay path side by side (DIRECT, REPEATER,
the NIO floor, HAProxy, nginx, socat, …) and writes docs/BENCHMARKS.md, docs/bench/*.png and
docs/bench/results.json.

    catalog     measurements, paths, hops, peers, the NIO floor
    procs       starting/stopping processes, pinning, ports, CPU time from /proc
    env         one run's context; install (tools/install-deps.sh --bench) and build
    paths       how each path is started (templates/: HAProxy and nginx configurations)
    rounds      alternating rounds, relay CPU per round
    measure/    one module per measurement
    results     typed results (dataclasses) and results.json
    summary     medians over rounds (pure)
    tables      formatting, ratios, best peer, floor, shared tables (pure)
    report      BENCHMARKS.md, one writer per section
    plots       docs/bench/*.png
    cli         the command line
"""
