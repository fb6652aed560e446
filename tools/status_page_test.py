#!/usr/bin/env python3
"""The status page in a real browser: Debian's chromium, driven by Selenium, against a real
repeaterd in front of a real link peer (`muxcat listen --echo`).

It checks what an operator would: the page loads and shows the link up; a session this test
starts appears with its client address and byte counts that grow; killing the link's peer turns
the link down on the page within 2 s; and the page fetched nothing but its own admin endpoint.

    tools/status_page_test.py [--bin DIR] [--screenshot FILE]

tools/test.sh runs it on the debug build. `--screenshot docs/status-page.png` saves the page
under traffic (the README shows it).
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, condition, timeout: float = 20, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


class Traffic:
    """One client session that keeps sending and reading its echo, so its counts grow."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.local_port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        chunk = b"s" * 65536
        self.sock.settimeout(1)
        while not self.stop.is_set():
            try:
                self.sock.sendall(chunk)
                received = 0
                while received < len(chunk):
                    data = self.sock.recv(len(chunk) - received)
                    if not data:
                        return
                    received += len(data)
            except OSError:
                return
            time.sleep(0.02)

    def close(self):
        self.stop.set()
        self.sock.close()
        self.thread.join(timeout=5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build", "debug"))
    ap.add_argument("--screenshot", help="save the page under traffic here (PNG)")
    args = ap.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    work = tempfile.mkdtemp(prefix="status-page-test.")
    link_port, client_port, admin_port = free_port(), free_port(), free_port()
    processes = []

    def start(argv, name):
        log = open(os.path.join(work, name + ".log"), "w")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    driver = None
    traffic = None
    try:
        peer = start([os.path.join(args.bin, "muxcat"), "listen", f"127.0.0.1:{link_port}", "--echo"], "muxcat")
        start([os.path.join(args.bin, "repeaterd"), "--listen", f"127.0.0.1:{client_port}",
               "--backend", f"127.0.0.1:{link_port}", "--threads", "1", "--admin", f"127.0.0.1:{admin_port}"], "repeaterd")
        base = f"http://127.0.0.1:{admin_port}"
        wait_for("repeaterd's /readyz to say ready", lambda: http_status(base + "/readyz") == 200)

        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)

        # Read in one script call: the page redraws its tables every second, so elements found one
        # call earlier may be gone by the next.
        def link_state():
            return driver.execute_script(
                "const b = document.querySelector('#links .state'); return b ? b.textContent : null;")

        driver.get(base + "/status")
        wait_for("the page to show the link up", lambda: link_state() == "up", timeout=10)
        print("status page: the link shows up")

        traffic = Traffic(client_port)
        client = f"127.0.0.1:{traffic.local_port}"

        def session_bytes_in():
            rows = driver.execute_script(
                "return Array.from(document.querySelectorAll('#sessions tbody tr'))"
                ".map(r => Array.from(r.cells).map(c => c.textContent));")
            for cells in rows:
                if len(cells) > 4 and cells[1] == client:
                    return cells[4]
            return None

        first = wait_for(f"a session from {client} on the page", session_bytes_in, timeout=10)
        # The JSON behind the cell, to compare numbers rather than "1.2 MiB" texts.
        def json_bytes_in():
            with urllib.request.urlopen(base + "/status.json", timeout=2) as answer:
                document = json.load(answer)
            return next((s["bytes_in"] for s in document["sessions"] if s["client"] == client), None)
        before = json_bytes_in()
        wait_for("the session's byte counts to grow on the page", lambda: session_bytes_in() not in (None, first), timeout=10)
        after = json_bytes_in()
        assert before is not None and after is not None and after > before, (before, after)
        print(f"status page: session {client} shows growing counts ({first} -> {session_bytes_in()})")

        if args.screenshot:
            time.sleep(12)  # some seconds of sparkline
            driver.save_screenshot(args.screenshot)
            print(f"status page: screenshot saved to {args.screenshot}")

        peer.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_for("the page to show the link down", lambda: link_state() == "down", timeout=2, every=0.02)
        print(f"status page: the link shows down {time.monotonic() - killed:.2f} s after its peer was killed")

        urls = set()
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                urls.add(message["params"]["request"]["url"])
        outside = sorted(url for url in urls if not url.startswith(base + "/"))
        assert not outside, f"the page fetched from outside its admin endpoint: {outside}"
        assert base + "/status.json" in urls, urls
        print(f"status page: {len(urls)} distinct URLs fetched, all from {base}/")
        return 0
    finally:
        if traffic:
            traffic.close()
        if driver:
            driver.quit()
        for process in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    sys.exit(main())
