#!/usr/bin/env python3
"""Attack benchmark: a legitimate client's latency and success rate against `landlord
edge` and against nginx with its usual limits, first unloaded and then under floods from
127.0.0.2, side by side in one run. Then testssl.sh against the edge.

    just attack
    python3 scripts/attack.py [--seconds 8] [--idle 5000] [--no-testssl]

Set-up is scripts/bench-edge.py's (same page, same shape of certificate chain, the edge
issued by Landlord's local CA, both servers pinned to core 0, everything here on core 1),
with these limits:

  * landlord: its defaults (header timeout 10 s, idle timeout 60 s, 256 connections per
    client, 10 000 per listener);
  * nginx: `client_header_timeout 10s; keepalive_timeout 60s; limit_conn_zone
    $binary_remote_addr zone=perip:10m; limit_conn perip 256;` and 16 384 worker
    connections.

Floods, each run for --seconds while the legitimate client (127.0.0.1, a new TLS
connection per request, 20 per second) measures:

  (a) idle: --idle connections that send half a request head and wait (HTTPS);
  (b) bogus SNI: TLS handshakes with random unknown server names, as fast as one core
      makes them;
  (c) random paths: keep-alive GETs for random 200-byte paths over TLS;
  (d) challenge paths: GET /.well-known/acme-challenge/<random> with random Host headers
      on the plain-HTTP port.

Reported per server and flood: legitimate p50/p99 (ms) and success rate, flood requests
or connections achieved, server RSS before/after, and for the edge the database queries
visitors caused (`landlord_edge_db_queries_total`) and the database's committed
transactions. Targets (issue #12): 0 failed legitimate requests, p99 within 2x of the
unloaded value, RSS flat, queries bounded. Results: target/bench/attack-results.md.

Every load goes to 127.0.0.0/8 only, is bounded by --seconds, and stops by itself.
"""

import argparse
import importlib.util
import json
import multiprocessing
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("bench_edge", os.path.join(ROOT, "scripts", "bench-edge.py"))
be = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(be)
from harness import free_port, pct, psql, run_quiet, wait_port  # noqa: E402

RESULTS_MD = os.path.join(be.BENCH_DIR, "attack-results.md")
FLOOD_FROM = "127.0.0.2"
LOAD_CORE = "1"


def pin_self():
    try:
        os.sched_setaffinity(0, {int(LOAD_CORE)})
    except OSError:
        pass


# ---------------------------------------------------------------- floods (child processes)

def flood_idle(port, count, seconds, ctx_ca):
    pin_self()
    held = []
    ctx = ssl.create_default_context(cafile=ctx_ca)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    end = time.monotonic() + seconds
    for _ in range(count):
        if time.monotonic() > end:
            break
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2, source_address=(FLOOD_FROM, 0))
            s.sendall(b"\x16\x03\x01")  # half a ClientHello: the cheapest hold
            held.append(s)
        except OSError:
            pass
    print(json.dumps({"opened": len(held)}), flush=True)
    time.sleep(max(0, end - time.monotonic()))
    for s in held:
        s.close()


def flood_sni(port, seconds):
    pin_self()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        name = f"x{random.getrandbits(48):x}.bogus.example"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2, source_address=(FLOOD_FROM, 0)) as s:
                with ctx.wrap_socket(s, server_hostname=name):
                    pass
        except OSError:
            pass
        n += 1
    print(json.dumps({"handshakes": n}), flush=True)


def flood_paths(port, host, seconds):
    pin_self()
    import http.client
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    end, n = time.monotonic() + seconds, 0
    conn = None
    while time.monotonic() < end:
        try:
            if conn is None:
                # By name (the run's /etc/hosts line), so that it sends SNI.
                conn = http.client.HTTPSConnection(host, port, timeout=5, context=ctx,
                                                   source_address=(FLOOD_FROM, 0))
            conn.request("GET", "/" + "%x" % random.getrandbits(800) + ".html", headers={"Host": host})
            conn.getresponse().read()
            n += 1
        except (OSError, http.client.HTTPException):
            conn = None
    print(json.dumps({"requests": n}), flush=True)


def flood_challenges(port, seconds):
    pin_self()
    import http.client
    end, n = time.monotonic() + seconds, 0
    conn = None
    while time.monotonic() < end:
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(FLOOD_FROM, 0))
            token = "%x" % random.getrandbits(128)
            conn.request("GET", f"/.well-known/acme-challenge/{token}",
                         headers={"Host": f"h{random.getrandbits(40):x}.example.com"})
            conn.getresponse().read()
            n += 1
        except (OSError, http.client.HTTPException):
            conn = None
    print(json.dumps({"requests": n}), flush=True)


# ---------------------------------------------------------------- the legitimate client

def legitimate(port, ca, seconds, rate=20):
    """New TLS connection + GET / per request, `rate` per second; latencies in ms."""
    ctx = ssl.create_default_context(cafile=ca)
    lat, failed = [], 0
    end = time.monotonic() + seconds
    nxt = time.monotonic()
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                with ctx.wrap_socket(s, server_hostname=be.HOST) as t:
                    t.sendall(f"GET / HTTP/1.1\r\nHost: {be.HOST}\r\nConnection: close\r\n\r\n".encode())
                    data = b""
                    while True:
                        chunk = t.recv(65536)
                        if not chunk:
                            break
                        data += chunk
            if b" 200 " in data.split(b"\r\n", 1)[0]:
                lat.append((time.monotonic() - t0) * 1000)
            else:
                failed += 1
        except (OSError, ssl.SSLError):
            failed += 1
        nxt += 1 / rate
        time.sleep(max(0, nxt - time.monotonic()))
    p50, p99 = (pct(lat, p, interpolate=False) if lat else None for p in (50, 99))
    return {"ok": len(lat), "failed": failed, "p50_ms": p50, "p99_ms": p99}


# ---------------------------------------------------------------- the run

class Attack(be.Bench):
    def start_nginx(self, www):
        d = os.path.join(be.WORK_DIR, "nginx")
        port, http_port = free_port(), free_port()
        for sub in ("tmp", "logs", "acme"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        conf = f"""# written by scripts/attack.py
worker_processes 1;
worker_rlimit_nofile 40000;
error_log {d}/logs/error.log crit;
pid {d}/nginx.pid;
events {{ worker_connections 16384; }}
http {{
{be.nginx_http_basics(d)}
    client_header_timeout 10s;
    keepalive_timeout 60s;
    limit_conn_zone $binary_remote_addr zone=perip:10m;
    limit_conn perip 256;
    server {{
        listen 127.0.0.1:{http_port};
        location /.well-known/acme-challenge/ {{ root {d}/acme; }}
    }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        server_name {be.HOST};
        ssl_certificate {self.nginx_chain};
        ssl_certificate_key {self.nginx_key};
        ssl_protocols TLSv1.3 TLSv1.2;
        root {www};
        index index.html;
    }}
}}
"""
        p = self.run_nginx(d, conf, port)
        return {"name": "nginx", "proc": p, "port": port, "http_port": http_port, "ca": self.nginx_ca}

    def start_edge(self, label):
        http_port, https_port, metrics = free_port(), free_port(), free_port()
        env = self.landlord_env(LANDLORD_HTTP_ADDR=f"127.0.0.1:{http_port}",
                                LANDLORD_HTTPS_ADDR=f"127.0.0.1:{https_port}",
                                LANDLORD_METRICS_ADDR=f"127.0.0.1:{metrics}",
                                LANDLORD_HSTS="off")
        p = self.start("landlord edge", ["taskset", "-c", be.SERVER_CORE, be.BINARY, "--no-migrate", "edge"],
                       env=env, logfile=os.path.join(be.WORK_DIR, "edge-attack.log"))
        wait_port(https_port, p, "landlord edge")
        return {"name": "landlord", "proc": p, "port": https_port, "http_port": http_port,
                "metrics": metrics, "ca": self.landlord_ca}

    def db_queries(self, server):
        if server["name"] != "landlord":
            return None
        text = urllib.request.urlopen(f"http://127.0.0.1:{server['metrics']}/metrics").read().decode()
        return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                   if l.startswith("landlord_edge_db_queries_total"))

    def xacts(self):
        out = psql(self.admin_url, f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{self.db_name}'")
        return int(out or 0)

    def scenario(self, server, flood, seconds):
        procs = []
        if flood is not None:
            target, fargs = flood
            q = multiprocessing.Queue()
            def child(*a, _t=target):
                import contextlib, io
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    _t(*a)
                q.put(buf.getvalue())
            procs.append(multiprocessing.Process(target=child, args=fargs))
        rss0 = be.rss_kib(server["proc"].pid)
        q0, x0 = self.db_queries(server), self.xacts()
        for p in procs:
            p.start()
        time.sleep(1.5 if flood else 0)  # let the flood build up
        legit = legitimate(server["port"], server["ca"], seconds)
        flood_out = {}
        for p in procs:
            p.join(seconds + 30)
            if p.is_alive():
                p.kill()
            try:
                flood_out = json.loads(q.get(timeout=5).strip().splitlines()[-1])
            except Exception:
                pass
        q1, x1 = self.db_queries(server), self.xacts()
        return dict(legit, flood=flood_out, rss_kib_before=rss0, rss_kib_after=be.rss_kib(server["proc"].pid),
                    db_queries=None if q0 is None else q1 - q0, db_xacts=x1 - x0)

    def run(self):
        a = self.args
        os.makedirs(os.path.join(be.WORK_DIR, "nginx"), exist_ok=True)
        self.install_missing()
        if not a.no_testssl and not be.shutil.which("testssl"):
            be.log("installing testssl.sh (apt-get)")
            run_quiet(["apt-get", "install", "-y", "-qq", "testssl.sh"], timeout=900)
        self.build()
        index_html = be.make_index_html()
        www = os.path.join(be.WORK_DIR, "www")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "index.html"), "wb") as f:
            f.write(index_html)
        self.database()
        self.issue_certificate(index_html)
        self.nginx_certificate()
        self.hosts_add()
        servers = [self.start_nginx(www), self.start_edge("attack")]
        time.sleep(2)
        scenarios = {
            "unloaded": lambda s: None,
            f"idle ({a.idle} half-open)": lambda s: (flood_idle, (s["port"], a.idle, a.seconds + 3, s["ca"])),
            "bogus SNI handshakes": lambda s: (flood_sni, (s["port"], a.seconds + 2)),
            "random paths": lambda s: (flood_paths, (s["port"], be.HOST, a.seconds + 2)),
            "challenge paths": lambda s: (flood_challenges, (s["http_port"], a.seconds + 2)),
        }
        results = {s["name"]: {} for s in servers}
        for label, make in scenarios.items():
            for s in servers:
                be.log(f"{s['name']}: {label}")
                results[s["name"]][label] = self.scenario(s, make(s), a.seconds)
                time.sleep(1)
        self.attack_results = results
        if not a.no_testssl:
            self.attack_testssl = self.testssl(servers[1])
        self.write_attack()

    def testssl(self, edge):
        out = os.path.join(be.WORK_DIR, "testssl.json")
        if os.path.exists(out):
            os.unlink(out)
        be.log("testssl.sh against the edge (about a minute)")
        subprocess.run(["testssl", "--quiet", "--color", "0", "--ip", "127.0.0.1", "--jsonfile", out,
                        f"{be.HOST}:{edge['port']}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=600)
        with open(out) as f:
            findings = json.load(f)
        # The local CA's own findings and BREACH are expected (see README).
        expected = {"cert_chain_of_trust", "cert_trust", "cert_revocation", "cert_ocspURL", "cert_crlDistributionPoints",
                    "BREACH", "OCSP_stapling", "cert_caIssuers"}
        high = [f for f in findings if f.get("severity") in ("MEDIUM", "HIGH", "CRITICAL")]
        unexpected = [f for f in high if not any(f["id"].startswith(e) for e in expected)]
        return {"above_low": [(f["id"], f["severity"], f.get("finding", "")) for f in high],
                "unexpected": [(f["id"], f["severity"], f.get("finding", "")) for f in unexpected]}

    def write_attack(self):
        r = self.attack_results
        lines = [f"### Attack benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                 f"`{self.args.command_label or 'just attack'}`)", "",
                 f"Machine: {be.machine()}. Legitimate client: 20 new TLS connections per second from "
                 f"127.0.0.1, each `GET /` of a {len(be.make_index_html())}-byte page; floods from 127.0.0.2 for "
                 f"{self.args.seconds} s. Both servers on core 0, clients on core 1.", "",
                 "| flood | server | legit ok / failed | p50 ms | p99 ms | flood achieved | RSS before → after (MiB) | edge DB queries | DB transactions |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for label in next(iter(r.values())):
            for name in r:
                x = r[name][label]
                fmt = lambda v: "–" if v is None else f"{v:.1f}"
                flood = ", ".join(f"{k} {v}" for k, v in x["flood"].items()) or "–"
                lines.append(f"| {label} | {name} | {x['ok']} / {x['failed']} | {fmt(x['p50_ms'])} | {fmt(x['p99_ms'])} "
                             f"| {flood} | {x['rss_kib_before'] / 1024:.1f} → {x['rss_kib_after'] / 1024:.1f} "
                             f"| {'–' if x['db_queries'] is None else int(x['db_queries'])} | {x['db_xacts'] if name == 'landlord' else '–'} |")
        verdict = []
        for name in r:
            base = r[name]["unloaded"]["p99_ms"] or 0
            fails = sum(x["failed"] for x in r[name].values())
            worst = max((x["p99_ms"] or 0) for x in r[name].values())
            verdict.append(f"{name}: {fails} failed legitimate requests; worst p99 {worst:.1f} ms vs "
                           f"{base:.1f} ms unloaded ({worst / base if base else 0:.2f}x)")
        lines += ["", "Verdict: " + "; ".join(verdict) + "."]
        if hasattr(self, "attack_testssl"):
            t = self.attack_testssl
            lines += ["", f"testssl.sh against the edge: findings above LOW: "
                      + (", ".join(f"{i} ({s})" for i, s, _ in t["above_low"]) or "none")
                      + f"; unexpected (not the local CA's own, not BREACH): "
                      + (", ".join(f"{i} ({s}: {f})" for i, s, f in t["unexpected"]) or "none") + "."]
        md = "\n".join(lines) + "\n"
        os.makedirs(be.BENCH_DIR, exist_ok=True)
        with open(RESULTS_MD, "w") as f:
            f.write(md)
        print(md)
        if hasattr(self, "attack_testssl") and self.attack_testssl["unexpected"]:
            raise be.BenchError("testssl.sh reported findings above LOW that are the edge's")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8, help="seconds per flood (default 8)")
    ap.add_argument("--idle", type=int, default=5000, help="idle connections in flood (a) (default 5000)")
    ap.add_argument("--no-testssl", action="store_true", help="skip testssl.sh")
    ap.add_argument("--no-build", action="store_true", help="use target/release/landlord as it is")
    ap.add_argument("--command-label")
    args = ap.parse_args()
    # What bench-edge's set-up reads.
    args.nginx_tickets = "on"
    if os.geteuid() != 0:
        raise SystemExit("attack: run as root: it edits /etc/hosts for the run (restored at exit)")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, be.on_signal)
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    attack = Attack(args)
    code = 0
    try:
        attack.run()
    except (be.BenchError, be.Interrupted) as e:
        be.log(f"failed: {e}")
        code = 1
    finally:
        attack.cleanup()
    sys.exit(code)


if __name__ == "__main__":
    main()
