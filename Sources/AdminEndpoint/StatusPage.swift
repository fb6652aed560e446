/// The live status page (`GET /status`): one HTML document with its CSS and script inline, so it
/// needs nothing from outside the admin endpoint (no CDN, no other request than `/status.json`).
/// The script fetches `/status.json` once a second while the tab is visible, stops while it is
/// hidden, and draws each link's bytes per second of the last five minutes from what it fetched.
enum StatusPage {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>status</title>
        <style>
          :root { --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --dim: #656d76; --line: #d0d7de; --bg: #f6f8fa; }
          body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 16px 24px; color: #1f2328; }
          h1 { font-size: 20px; margin: 0 0 4px; }
          h2 { font-size: 15px; margin: 20px 0 6px; }
          .sub { color: var(--dim); }
          table { border-collapse: collapse; width: 100%; }
          th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
          th { background: var(--bg); font-weight: 600; }
          td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
          .state { font-weight: 600; padding: 1px 6px; border-radius: 4px; color: #fff; }
          .up { background: var(--ok); } .down { background: var(--bad); } .connecting, .draining { background: var(--warn); }
          .limits { display: flex; gap: 24px; flex-wrap: wrap; }
          .limit { min-width: 220px; }
          .bar { height: 8px; background: var(--bg); border: 1px solid var(--line); border-radius: 4px; overflow: hidden; }
          .bar > div { height: 100%; background: var(--ok); }
          .bar.high > div { background: var(--bad); }
          svg.spark { vertical-align: middle; }
          #error { color: var(--bad); font-weight: 600; }
          .events td:first-child { color: var(--dim); }
        </style>
        </head>
        <body>
        <h1 id="title">status</h1>
        <div class="sub" id="summary">loading…</div>
        <div id="error"></div>
        <h2>Limits</h2>
        <div class="limits" id="limits"></div>
        <h2>Links</h2>
        <table id="links"><thead><tr>
          <th>link</th><th>state</th><th>peer</th><th class="n">up for</th><th class="n">RTT</th><th class="n">redials</th>
          <th class="n">streams</th><th class="n">in/s</th><th class="n">out/s</th><th>last minutes (in + out)</th>
          <th class="n">queued for link</th><th>Go Away</th>
        </tr></thead><tbody></tbody></table>
        <h2 id="sessions-title">Busiest sessions</h2>
        <table id="sessions"><thead><tr>
          <th>session</th><th>client</th><th>link</th><th class="n">age</th><th class="n">in</th><th class="n">out</th>
          <th class="n">bytes/s</th><th class="n">send window</th><th class="n">receive window</th><th class="n">queued to client</th>
        </tr></thead><tbody></tbody></table>
        <h2>Recent link events</h2>
        <table class="events" id="events"><thead><tr><th>time</th><th>link</th><th>event</th><th>detail</th></tr></thead><tbody></tbody></table>
        <script>
        "use strict";
        // Everything here is drawn from /status.json, fetched once a second while the tab is visible.
        const history = new Map();   // link index -> [bytes/s in + out], the last 300 samples
        const keep = 300;
        let timer = null;

        function bytes(n) {
          if (n === null || n === undefined) return "–";
          const units = ["B", "KiB", "MiB", "GiB", "TiB"];
          let i = 0;
          while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
          return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
        }
        function duration(s) {
          if (s === null || s === undefined) return "–";
          if (s < 60) return s.toFixed(1) + " s";
          if (s < 3600) return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
          return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
        }
        function cell(text, cls) {
          const td = document.createElement("td");
          if (cls) td.className = cls;
          if (text instanceof Node) td.appendChild(text); else td.textContent = text;
          return td;
        }
        function row(cells) {
          const tr = document.createElement("tr");
          for (const c of cells) tr.appendChild(c);
          return tr;
        }
        function badge(state) {
          const span = document.createElement("span");
          span.className = "state " + state;
          span.textContent = state;
          return span;
        }
        function sparkline(values) {
          const ns = "http://www.w3.org/2000/svg";
          const svg = document.createElementNS(ns, "svg");
          svg.setAttribute("class", "spark");
          svg.setAttribute("width", "160");
          svg.setAttribute("height", "24");
          const max = Math.max(1, ...values);
          const points = values.map((v, i) => ((i / (keep - 1)) * 160).toFixed(1) + "," + (23 - (v / max) * 22).toFixed(1));
          const line = document.createElementNS(ns, "polyline");
          line.setAttribute("points", points.join(" "));
          line.setAttribute("fill", "none");
          line.setAttribute("stroke", "#0969da");
          line.setAttribute("stroke-width", "1.5");
          svg.appendChild(line);
          return svg;
        }
        function limit(name, used, max) {
          const div = document.createElement("div");
          div.className = "limit";
          const share = max ? used / max : 0;
          div.innerHTML = "<div></div><div class='bar'><div></div></div>";
          div.firstChild.textContent = name + ": " + used + (max ? " of " + max : "");
          const bar = div.lastChild;
          if (share > 0.8) bar.className = "bar high";
          bar.firstChild.style.width = Math.min(100, share * 100).toFixed(1) + "%";
          return div;
        }
        function fill(id, rows) {
          const body = document.querySelector("#" + id + " tbody");
          body.replaceChildren(...rows);
        }
        function render(s) {
          document.title = s.daemon + " status";
          document.getElementById("title").textContent = s.daemon + " " + s.version;
          const state = s.draining ? "draining" : "serving";
          document.getElementById("summary").textContent =
            state + " · up " + duration(s.uptime_seconds) + " · " + s.time;
          const limits = [limit("sessions", s.limits.sessions, s.limits.max_sessions)];
          if (s.process && s.process.descriptors !== null) {
            limits.push(limit("descriptors", s.process.descriptors, s.process.max_descriptors));
          }
          document.getElementById("limits").replaceChildren(...limits);
          fill("links", s.links.map(l => {
            const h = history.get(l.index) || [];
            h.push((l.bytes_in_per_second || 0) + (l.bytes_out_per_second || 0));
            while (h.length > keep) h.shift();
            history.set(l.index, h);
            const padded = new Array(keep - h.length).fill(0).concat(h);
            return row([cell(String(l.index)), cell(badge(l.state)), cell(l.peer || "–"), cell(duration(l.up_seconds), "n"),
              cell(l.rtt_ms === null ? "–" : l.rtt_ms.toFixed(2) + " ms", "n"), cell(String(l.redials), "n"),
              cell(String(l.streams_open), "n"), cell(bytes(l.bytes_in_per_second) + "/s", "n"),
              cell(bytes(l.bytes_out_per_second) + "/s", "n"), cell(sparkline(padded)), cell(bytes(l.queued_bytes), "n"),
              cell(l.go_away)]);
          }));
          document.getElementById("sessions-title").textContent =
            "Busiest sessions (" + s.sessions.length + " of " + s.sessions_total + ")";
          fill("sessions", s.sessions.map(x => row([cell(String(x.session)),
            cell(x.client + (x.via ? " via " + x.via : "")), cell(x.link === null ? "–" : String(x.link)),
            cell(duration(x.age_seconds), "n"), cell(bytes(x.bytes_in), "n"), cell(bytes(x.bytes_out), "n"),
            cell(bytes(x.bytes_per_second) + "/s", "n"), cell(bytes(x.send_window), "n"), cell(bytes(x.receive_window), "n"),
            cell(bytes(x.queued_to_client), "n")])));
          fill("events", s.events.slice().reverse().map(e => row([cell(e.time), cell(String(e.link)), cell(e.event), cell(e.detail || "")])));
        }
        async function poll() {
          try {
            const response = await fetch("/status.json", { cache: "no-store" });
            if (!response.ok) throw new Error("HTTP " + response.status);
            render(await response.json());
            document.getElementById("error").textContent = "";
          } catch (e) {
            document.getElementById("error").textContent = "cannot reach the daemon: " + e.message;
            for (const badgeElement of document.querySelectorAll("#links .state")) {
              badgeElement.className = "state down";
              badgeElement.textContent = "unknown";
            }
          }
        }
        function start() { if (timer === null) { poll(); timer = setInterval(poll, 1000); } }
        function stop() { if (timer !== null) { clearInterval(timer); timer = null; } }
        document.addEventListener("visibilitychange", () => document.hidden ? stop() : start());
        if (!document.hidden) start();
        </script>
        </body>
        </html>
        """#
}
