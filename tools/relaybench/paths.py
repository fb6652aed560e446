"""How each relay path is started in front of a server on 127.0.0.1:TARGET. HAProxy's and nginx's
configurations are the template files in templates/."""
from __future__ import annotations

import os
import time
from string import Template

from .env import Env
from .procs import free_port, wait_port

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
SPLICE_OPTIONS = "    option splice-request\n    option splice-response\n"


def render(template: str, **values) -> str:
    """A template of templates/ with its ${names} filled in (every one must be given)."""
    with open(os.path.join(TEMPLATES, template)) as f:
        return Template(f.read()).substitute(**{k: str(v) for k, v in values.items()})


def haproxy_cfg(env: Env, front: int, target: int, splice: bool, tag: str) -> str:
    path = os.path.join(env.workdir, f"haproxy-{tag}-{front}.cfg")
    with open(path, "w") as f:
        f.write(render("haproxy.cfg", front=front, target=target, splice_options=SPLICE_OPTIONS if splice else ""))
    return path


def nginx_conf(env: Env, front: int, target: int) -> str:
    d = os.path.join(env.workdir, f"nginx-{front}")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(render("nginx.conf", front=front, target=target, dir=d))
    return path


def _repeater_bin(env: Env, name: str):
    """REPEATER*_BEFORE: the same path with the binaries of --baseline-bin (before/after in one run)."""
    if name.endswith("_BEFORE"):
        return lambda x: os.path.join(env.args.baseline_bin, x)
    return env.b


def _repeaterd(env: Env, b, front: int, link: int, threads: int | None, label: str, cpus, extra=()):
    cmd = [b("repeaterd"), "--listen", f"127.0.0.1:{front}", "--backend", f"127.0.0.1:{link}", "--log-level", "warning",
           *extra]
    if threads:
        cmd += ["--threads", str(threads)]
    r = env.procs.start(label, cmd, cpus)
    wait_port(front)
    time.sleep(0.3)  # the link is dialed at start
    return r


def _nio_relay(env: Env, front: int, target: int, label: str, cpus):
    # --threads 1: one event loop, as repeaterd runs pinned to one CPU (System.coreCount ignores taskset).
    p = env.procs.start(label, [env.nio_relay, "--listen", f"127.0.0.1:{front}", "--target", f"127.0.0.1:{target}",
                                "--threads", "1"], cpus)
    wait_port(front)
    return p


def start_path(env: Env, name: str, target: int, cpus: str | None, repeater_threads: int | None = None):
    """Starts PATH in front of 127.0.0.1:target; returns (front port, processes)."""
    P = env.procs
    if name == "DIRECT":
        return target, []
    front = free_port()
    if name in ("REPEATER_1HOP", "REPEATER_1HOP_BEFORE"):
        # The deployment shape: the yamux endpoint is the service (runtime-manager in production); here
        # `muxcat listen --echo` answers every stream itself. TARGET is not used: there is no exit hop.
        b = _repeater_bin(env, name)
        link = free_port()
        m = P.start("muxcat-echo", [b("muxcat"), "listen", f"127.0.0.1:{link}", "--echo", "--log-level", "warning"],
                    cpus)
        wait_port(link)
        return front, [_repeaterd(env, b, front, link, repeater_threads, "repeaterd-1hop", cpus), m]
    if name in ("REPEATER", "REPEATER_BEFORE"):
        b = _repeater_bin(env, name)
        link = free_port()
        m = P.start("muxcat", [b("muxcat"), "listen", f"127.0.0.1:{link}", "--forward", f"127.0.0.1:{target}",
                               "--log-level", "warning"], cpus)
        wait_port(link)
        return front, [_repeaterd(env, b, front, link, repeater_threads, "repeaterd", cpus), m]
    if name in ("REPEATER_ADMIN", "REPEATER_STATUS"):
        # REPEATER with the admin endpoint on, scraped every second as a Prometheus server would (its
        # default is every 15 s): the scrapes' CPU inside repeaterd counts; the scraper itself is no relay.
        # REPEATER_STATUS adds its status page open in a real browser (headless chromium), whose script
        # fetches /status.json every second: what the page costs repeaterd, beside REPEATER_ADMIN. The
        # browser is no relay either (its CPU is not counted), and it is not pinned with the relays.
        b = env.b
        link, admin = free_port(), free_port()
        m = P.start("muxcat", [b("muxcat"), "listen", f"127.0.0.1:{link}", "--forward", f"127.0.0.1:{target}",
                               "--log-level", "warning"], cpus)
        wait_port(link)
        r = _repeaterd(env, b, front, link, repeater_threads, "repeaterd", cpus, ["--admin", f"127.0.0.1:{admin}", "--drain-grace", "0"])
        wait_port(admin)
        scraper = P.start("admin-scraper", ["sh", "-c", f"while :; do curl -s -o /dev/null "
                                                         f"http://127.0.0.1:{admin}/metrics; sleep 1; done"], None)
        if name == "REPEATER_ADMIN":
            return front, [r, m, scraper]
        profile = os.path.join(env.workdir, f"chromium-{front}")
        browser = P.start("status-browser", ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
                                             "--disable-dev-shm-usage", "--remote-debugging-port=0",
                                             f"--user-data-dir={profile}", f"http://127.0.0.1:{admin}/status"], None)
        return front, [r, m, scraper, browser]
    if name == "REPEATER_ACCESSLOG":
        # REPEATER with `repeaterd --access-log --log-format json`: one JSON line per session written to
        # its log file (what the access log costs, beside REPEATER in one run).
        b = env.b
        link = free_port()
        m = P.start("muxcat", [b("muxcat"), "listen", f"127.0.0.1:{link}", "--forward", f"127.0.0.1:{target}",
                               "--log-level", "warning"], cpus)
        wait_port(link)
        return front, [_repeaterd(env, b, front, link, repeater_threads, "repeaterd", cpus,
                                  ["--access-log", "--log-format", "json"]), m]
    if name == "NIO_1TO1":
        return front, [_nio_relay(env, front, target, "nio-relay", cpus)]
    if name == "NIO_1TO1x2":
        mid = free_port()
        second = _nio_relay(env, mid, target, "nio-relay-2nd", cpus)
        return front, [_nio_relay(env, front, mid, "nio-relay-1st", cpus), second]
    if name in ("HAPROXY", "HAPROXY_SPLICE"):
        cfg = haproxy_cfg(env, front, target, name == "HAPROXY_SPLICE", name)
        p = P.start(name.lower(), ["haproxy", "-db", "-f", cfg], cpus)
        wait_port(front)
        return front, [p]
    if name == "HAPROXYx2":
        mid = free_port()
        p2 = P.start("haproxy-2nd", ["haproxy", "-db", "-f", haproxy_cfg(env, mid, target, False, "x2b")], cpus)
        wait_port(mid)
        p1 = P.start("haproxy-1st", ["haproxy", "-db", "-f", haproxy_cfg(env, front, mid, False, "x2a")], cpus)
        wait_port(front)
        return front, [p1, p2]
    if name == "NGINX":
        conf = nginx_conf(env, front, target)
        p = P.start("nginx", ["nginx", "-p", os.path.dirname(conf), "-c", conf, "-e", os.path.dirname(conf) + "/err.log"],
                    cpus)
        wait_port(front)
        return front, [p]
    if name == "SOCAT":
        p = P.start("socat", ["socat", f"TCP-LISTEN:{front},bind=127.0.0.1,reuseaddr,fork,nodelay,backlog=4096",
                              f"TCP:127.0.0.1:{target},nodelay"], cpus)
        wait_port(front)
        return front, [p]
    raise ValueError(name)


def start_paths(env: Env, names, target: int, cpus: str | None = None, **kw):
    """Starts every path; returns ({path: front port}, all processes). Records each path's relay processes
    for the CPU accounting: REPEATER_1HOP's muxcat is its endpoint (as benchkit echo is the others'), not a relay."""
    fronts, procs = {}, []
    for n in names:
        front, ps = start_path(env, n, target, cpus, **kw)
        fronts[n] = front
        env.path_relays[n] = [(p.bench_name, p.pid) for p in ps if p.bench_name not in ("muxcat-echo", "admin-scraper", "status-browser")]
        procs += ps
    return fronts, procs
