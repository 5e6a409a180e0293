#!/usr/bin/env python3
"""Issuance benchmark: N domains from REST to `active` against Pebble, compared with a
sequential `lego` loop for the same number of names.

    just bench-issuance          # 100 domains
    just bench-issuance 50
    python3 scripts/bench-issuance.py --domains 100 [--lego-n 20] [--concurrency 16]

What it does (Python 3 standard library only):
  1. `cargo build --release -p landlord` (a no-op when fresh; --no-build skips it);
  2. a fresh database `landlord_bench_<pid>` on the server scripts/test-postgres.sh names;
  3. Pebble (PEBBLE_VA_NOSLEEP=1) + pebble-challtestsrv from scripts/test-acme.sh (run as a
     copy under target/bench/acme/ so its state, and `stop`, never touch a `just test` run);
  4. `landlord all` (api + worker + edge); a tenant; N hostnames CNAME'd to the platform
     target; all N POSTed, then GET /v1/domains polled every 100 ms until all are active;
     per-domain latency = the `issued` event's time - the domain's `created_at` (both
     stamped by PostgreSQL);
  5. the DNS-01 path: scripts/test-dns.sh (a copy; Knot, Unbound, a second Pebble), landlord
     again with DNS-01 settings, N' = min(N, 50) names certified through a delegated
     `_acme-challenge` CNAME only (--dns01-n);
  6. landlord stopped (SIGTERM), then `lego run` once per name, sequentially, on the same
     HTTP-01 port, each run timed;
  7. a results table printed and written into BENCHMARKS.md ("Issuance" section; other
     sections are kept). Raw numbers go to target/bench/issuance-<runid>.json.

Everything it starts is stopped and the database dropped on exit (also on Ctrl-C / failure).
"""

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

from harness import (  # scripts/harness.py, shared with bench-edge, soak and attack
    HarnessError as BenchError, cargo_build, challtestsrv, create_database, drop_database, free_port,
    git_revision, http, loadavg, log_warnings, logger, machine_facts, pct, pkg_version, postgres_server,
    proc_cpu, psql, run_quiet, spawn, summary, tail, terminate, write_section)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "target", "bench")
BINARY = os.path.join(ROOT, "target", "release", "landlord")
TARGET = "edge.platform.test"
ADMIN_TOKEN = "bench-admin"
# Any base64 of 32 bytes (the e2e tests' key): the bench database is thrown away.
MASTER_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
SECTION = "## Issuance (just bench-issuance)"
# A domain's timeline on the straight path, in order.
MILESTONES = ["created", "dns_verified", "order_placed", "challenge_ready", "issued"]
# The benchmark's own "check now" after pointing each name: not a detour.
OWN_KINDS = {"check_requested"}
# lego runs are bimodal: ~0.1-1.2 s when Pebble has validated by lego's first authorization
# check, else >= ~5.5 s (its first backoff sleep is 5 s). Anything under this did not sleep.
LEGO_FAST = 3.0

log = logger("bench-issuance")


# ---------------------------------------------------------------- small helpers

def parse_time(s):
    """RFC 3339 from the API (up to nanoseconds, `Z` or an offset) -> aware datetime."""
    m = re.fullmatch(r"(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", s)
    if not m:
        raise BenchError(f"unexpected timestamp {s!r}")
    base, frac, tz = m.groups()
    frac = ((frac or "") + "000000")[:6]
    tz = "+00:00" if tz == "Z" else tz
    return dt.datetime.fromisoformat(f"{base}.{frac}{tz}")


def machine():
    facts = machine_facts()
    nproc = run_quiet(["nproc"]).strip() if shutil.which("nproc") else str(os.cpu_count())
    os_name = (f"{facts['distro']}, Linux {platform.release()}" if facts["distro"]
               else platform.platform())
    return {"nproc": nproc, "model": facts["model"], "mem": facts["mem"], "os": os_name}


def cpu_times():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    total = sum(v[:8])  # guest time is already in user/nice
    return total - idle, total


# ---------------------------------------------------------------- the environment

class Bench:
    def __init__(self, args):
        self.args = args
        self.runid = f"{os.getpid():x}{int(time.time()) % 100000:05d}"
        self.acme_started = False
        self.dns_started = False
        self.db_admin_url = None
        self.db_name = None
        self.landlord = None
        self.lego = None
        self.env = {}
        self.results = {}

    # -- set-up

    def build(self):
        if self.args.no_build:
            if not os.access(BINARY, os.X_OK):
                raise BenchError(f"--no-build, but {BINARY} does not exist")
            log(f"using the existing {BINARY} (--no-build)")
            return
        log("cargo build --release -p landlord")
        cargo_build(ROOT)

    def database(self):
        url = postgres_server(timeout=None)
        self.db_admin_url = url
        self.db_name = f"landlord_bench_{os.getpid()}"
        log(f"creating database {self.db_name} on {url.rsplit('/', 1)[0]}")
        self.db_url = create_database(url, self.db_name, drop_first=True)

    def acme(self):
        # test-acme.sh keeps its state (PID files) in <checkout>/target/test-acme and its
        # `start` first stops whatever the last start there launched: that may be the Pebble of
        # a `just test` running right now. So run an unmodified copy of it from
        # target/bench/acme/scripts/: its state then lives in target/bench/acme/target/test-acme
        # and neither run can stop the other's Pebble.
        scripts = os.path.join(BENCH_DIR, "acme", "scripts")
        os.makedirs(scripts, exist_ok=True)
        self.acme_script = os.path.join(scripts, "test-acme.sh")
        shutil.copy2(os.path.join(ROOT, "scripts", "test-acme.sh"), self.acme_script)
        log("starting Pebble + pebble-challtestsrv (a copy of scripts/test-acme.sh, state in "
            "target/bench/acme/target/test-acme)")
        self.acme_started = True  # stop even if start fails half-way
        env = dict(os.environ)
        out = subprocess.run([self.acme_script, "start"], cwd=ROOT,
                             env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
        for line in out.splitlines():
            words = shlex.split(line)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                k, v = words[1].split("=", 1)
                self.env[k] = v
        need = ["LANDLORD_TEST_ACME_DIRECTORY", "LANDLORD_TEST_ACME_CA_ROOTS",
                "LANDLORD_TEST_DNS_SERVER", "LANDLORD_TEST_CHALLTESTSRV", "LANDLORD_TEST_HTTP01_PORT"]
        try:
            with open(os.path.join(BENCH_DIR, "acme", "target", "test-acme", "pebble.pid")) as f:
                self.pebble_pid = int(f.read().strip())
        except (OSError, ValueError):
            self.pebble_pid = None
        missing = [k for k in need if k not in self.env]
        if missing:
            raise BenchError(f"scripts/test-acme.sh start did not export {missing}")

    def dns(self, path, body):
        challtestsrv(self.env["LANDLORD_TEST_CHALLTESTSRV"], path, body)

    def point(self, host, target=TARGET):
        if target != TARGET:
            self.dns("/clear-a", {"host": target})
            self.dns("/add-a", {"host": target, "addresses": ["127.0.0.1"]})
        self.dns("/clear-aaaa", {"host": host})
        self.dns("/set-cname", {"host": host, "target": target})

    def dns_target(self):
        # add-a appends: clear first.
        self.dns("/clear-a", {"host": TARGET})
        self.dns("/clear-aaaa", {"host": TARGET})
        self.dns("/add-a", {"host": TARGET, "addresses": ["127.0.0.1"]})

    # -- landlord

    def start_landlord(self, extra_env=None):
        self.api = f"http://127.0.0.1:{free_port()}"
        http01 = int(self.env["LANDLORD_TEST_HTTP01_PORT"])
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "RUST_LOG": self.args.rust_log,
            "DATABASE_URL": self.db_url,
            "LANDLORD_MASTER_KEY": MASTER_KEY,
            "LANDLORD_ADMIN_TOKEN": ADMIN_TOKEN,
            "LANDLORD_CNAME_TARGET": TARGET,
            "LANDLORD_EDGE_IPS": "127.0.0.1",
            "LANDLORD_EXTRA_SUFFIXES": "test",
            "LANDLORD_DNS_SERVERS": self.env["LANDLORD_TEST_DNS_SERVER"],
            "LANDLORD_ACME_DIRECTORY": self.env["LANDLORD_TEST_ACME_DIRECTORY"],
            "LANDLORD_ACME_CA_ROOTS": self.env["LANDLORD_TEST_ACME_CA_ROOTS"],
            "LANDLORD_HTTP_ADDR": f"127.0.0.1:{http01}",
            "LANDLORD_HTTPS_ADDR": f"127.0.0.1:{free_port()}",
            "LANDLORD_API_ADDR": self.api.removeprefix("http://"),
            "LANDLORD_WORKER_CONCURRENCY": str(self.args.concurrency),
            # Every benchmark name is under one registered domain: Let's Encrypt's
            # 50-per-week budget would queue most of them (Pebble has no such limit).
            "LANDLORD_CA_BUDGET_REGISTERED_DOMAIN": "off",
        }
        env.update(extra_env or {})
        self.landlord_log = os.path.join(BENCH_DIR, "landlord.log")
        log(f"starting landlord all (API {self.api}, HTTP-01 on 127.0.0.1:{http01}, "
            f"worker concurrency {self.args.concurrency}; log: {os.path.relpath(self.landlord_log, ROOT)})")
        self.landlord = spawn([BINARY, "all"], self.landlord_log, env=env, cwd=ROOT)
        deadline = time.monotonic() + 60
        while True:
            if self.landlord.poll() is not None:
                raise BenchError(f"landlord exited with {self.landlord.returncode} at start-up:\n"
                                 + tail(self.landlord_log))
            try:
                ok = http("GET", self.api + "/healthz", timeout=2)[0] == 200
                with socket.create_connection(("127.0.0.1", http01), timeout=1):
                    pass
                if ok:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("landlord did not answer /healthz and the HTTP-01 port in 60 s:\n"
                                 + tail(self.landlord_log))
            time.sleep(0.1)

    def stop_landlord(self):
        p, self.landlord = self.landlord, None
        if p is None:
            return None
        if not terminate(p, 30, on_kill=lambda: log("landlord did not exit 30 s after SIGTERM; killing it")):
            return "killed after SIGTERM timeout"
        return p.returncode

    def list_domains(self, key):
        out, cursor = [], None
        while True:
            url = self.api + "/v1/domains?limit=1000" + (f"&cursor={cursor}" if cursor else "")
            status, page = http("GET", url, token=key)
            if status != 200:
                raise BenchError(f"GET /v1/domains: HTTP {status} {page}")
            out += page["domains"]
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def wait_all_active(self, key, ids, t0):
        """Poll GET /v1/domains every 100 ms until every domain in `ids` is active."""
        n = len(ids)
        deadline = t0 + self.args.deadline
        seen_active = {}
        ever_failed = {}
        last_report = t0
        while True:
            now = time.monotonic()
            domains = [d for d in self.list_domains(key) if d["id"] in ids]
            for d in domains:
                if d["status"] == "active" and d["id"] not in seen_active:
                    seen_active[d["id"]] = now - t0
                if d["status"] == "failed":
                    ever_failed.setdefault(d["id"], d.get("last_error"))
            if len(seen_active) == n:
                wall = now - t0
                cpu1 = cpu_times()
                ll1, pb1 = proc_cpu(self.landlord.pid), proc_cpu(self.pebble_pid)
                log(f"all {n} active after {wall:.2f} s; reading timelines")
                return wall, domains, seen_active, ever_failed, cpu1, ll1, pb1
            if now > deadline:
                stuck = [d for d in domains if d["status"] != "active"]
                lines = "\n".join(
                    f"  {d['hostname']}: {d['status']}; last_error={d.get('last_error')!r}; "
                    f"check.problem={(d.get('check') or {}).get('problem')!r}" for d in stuck)
                raise BenchError(f"{len(stuck)} of {n} domains not active after {self.args.deadline} s:\n"
                                 f"{lines}\nlandlord log tail:\n{tail(self.landlord_log)}")
            if now - last_report >= 5:
                counts = {}
                for d in domains:
                    counts[d["status"]] = counts.get(d["status"], 0) + 1
                log(f"  {now - t0:5.1f} s: {counts}")
                last_report = now
            time.sleep(0.1)

    def timelines(self, key, domains, seen_active, milestones):
        """Per-domain latency (created → issued) and phase times from each timeline; the
        domains whose timeline is not exactly `milestones`."""
        per = []
        odd = []
        for d in domains:
            status, ev = http("GET", f"{self.api}/v1/domains/{d['id']}/events", token=key)
            if status != 200:
                raise BenchError(f"GET events {d['id']}: HTTP {status} {ev}")
            events = ev["events"]
            kinds = [e["kind"] for e in events if e["kind"] not in OWN_KINDS]
            first = {}
            for e in events:
                t = parse_time(e["at"])
                if e["kind"] not in first or t < first[e["kind"]]:
                    first[e["kind"]] = t
            created = parse_time(d["created_at"])
            if "issued" not in first:
                raise BenchError(f"{d['hostname']} is active but has no `issued` event: {kinds}")
            # The straight path: each milestone exactly once, nothing else (no failure, retry).
            if sorted(kinds) != sorted(milestones):
                odd.append((d["hostname"], kinds, [e["message"] for e in events if e["kind"] not in milestones and e["kind"] not in OWN_KINDS
                                                   or kinds.count(e["kind"]) > 1]))
            row = {
                "hostname": d["hostname"],
                "latency": (first["issued"] - created).total_seconds(),
                "observed_active": seen_active[d["id"]],
                "events": kinds,
            }
            for a, z in zip(milestones, milestones[1:]):
                if a in first and z in first:
                    row[f"{a}->{z}"] = (first[z] - first[a]).total_seconds()
            per.append(row)
        return per, odd

    def bench_landlord(self):
        n = self.args.domains
        names = [f"b{i}-{self.runid}.bench.test" for i in range(n)]
        self.start_landlord()
        status, t = http("POST", self.api + "/v1/tenants", {"name": f"bench-{self.runid}"}, token=ADMIN_TOKEN)
        if status != 201:
            raise BenchError(f"POST /v1/tenants: HTTP {status} {t}")
        key = t["api_key"]

        log(f"registering {n} domains")
        cpu0 = cpu_times()
        ll0, pb0 = proc_cpu(self.landlord.pid), proc_cpu(self.pebble_pid)
        t0 = time.monotonic()
        ids = {}
        post_times = []
        for h in names:
            s = time.monotonic()
            status, d = http("POST", self.api + "/v1/domains", {"hostname": h}, token=key)
            post_times.append(time.monotonic() - s)
            if status != 201:
                raise BenchError(f"POST /v1/domains {h}: HTTP {status} {d}")
            # Every domain has its own CNAME target: point the name at it (as a tenant
            # would after registering), then "check now".
            self.point(h, d["dns"]["value"])
            http("POST", f"{self.api}/v1/domains/{d['id']}/check", token=key)
            ids[d["id"]] = h
        t_posted = time.monotonic() - t0

        wall, domains, seen_active, ever_failed, cpu1, ll1, pb1 = self.wait_all_active(key, ids, t0)
        per, odd = self.timelines(key, domains, seen_active, MILESTONES)
        code = self.stop_landlord()
        log_lines = log_warnings(self.landlord_log)
        lat = [p["latency"] for p in per]
        self.results["landlord"] = {
            "n": n,
            "concurrency": self.args.concurrency,
            "wall": wall,
            "post_phase": t_posted,
            "rate": n / wall,
            "latency": summary(lat),
            "phases": {f"{a}->{z}": summary([p[f"{a}->{z}"] for p in per if f"{a}->{z}" in p])
                       for a, z in zip(MILESTONES, MILESTONES[1:])},
            "post_latency": summary(post_times),
            "machine_cpu_busy": (cpu1[0] - cpu0[0]) / max(1, cpu1[1] - cpu0[1]),
            "landlord_cpu_s": None if ll0 is None or ll1 is None else ll1 - ll0,
            "pebble_cpu_s": None if pb0 is None or pb1 is None else pb1 - pb0,
            "ever_failed": ever_failed,
            "odd_timelines": odd,
            "exit": code,
            "log_warnings": log_lines,
            "per_domain": per,
        }

    # -- lego

    def bench_lego(self):
        n = self.args.domains
        m = self.args.lego_n if self.args.lego_n is not None else n
        m = max(0, min(m, n))
        if m == 0:
            log("lego comparison skipped (--lego-n 0)")
            return
        if not shutil.which("lego"):
            log("lego not found: apt-get install -y lego")
            sudo = [] if os.geteuid() == 0 else ["sudo"]
            subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
            subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "lego"], check=True,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        path = os.path.join(BENCH_DIR, "lego")
        shutil.rmtree(path, ignore_errors=True)  # an account from another Pebble would not exist
        names = [f"l{i}-{self.runid}.bench.test" for i in range(m)]
        for h in names:
            self.point(h)
        port = self.env["LANDLORD_TEST_HTTP01_PORT"]
        env = dict(os.environ, LEGO_CA_CERTIFICATES=self.env["LANDLORD_TEST_ACME_CA_ROOTS"])
        lego_log = os.path.join(BENCH_DIR, "lego.log")
        times, failures = [], []
        log(f"lego: {m} names, one `lego run` after another (each waits ~5 s between polls)")
        t0 = time.monotonic()
        with open(lego_log, "w") as logf:
            for i, h in enumerate(names):
                cmd = ["lego", "--server", self.env["LANDLORD_TEST_ACME_DIRECTORY"],
                       "--email", "bench@bench.test", "--accept-tos", "--domains", h,
                       "--http", "--http.port", f"127.0.0.1:{port}", "--path", path, "run"]
                if i == 0:
                    self.lego_cmd = " ".join(shlex.quote(c) for c in cmd)
                logf.write(f"$ {' '.join(cmd)}\n")
                logf.flush()
                s = time.monotonic()
                self.lego = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                             stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)
                try:
                    rc = self.lego.wait(timeout=300)
                except subprocess.TimeoutExpired:
                    self.lego.kill()
                    self.lego.wait()
                    rc = "timeout"
                self.lego = None
                took = time.monotonic() - s
                if rc == 0:
                    times.append(took)
                else:
                    failures.append((h, rc))
                    log(f"  lego failed for {h} (exit {rc}); see {os.path.relpath(lego_log, ROOT)}")
                if (i + 1) % 10 == 0 or i + 1 == m:
                    log(f"  lego {i + 1}/{m} done, {time.monotonic() - t0:.1f} s")
        wall = time.monotonic() - t0
        if not times:
            raise BenchError(f"every lego run failed; see {lego_log}:\n{tail(lego_log)}")
        self.results["lego"] = {
            "n": m,
            "of": n,
            "wall": wall,
            "per_name": summary(times),
            "times": times,
            "cmd": getattr(self, "lego_cmd", "").replace(ROOT + "/", ""),
            "failures": failures,
            "extrapolated_wall": None if m == n else statistics.fmean(times) * n,
        }

    # -- clean-up

    # -- DNS-01

    def dns01_bed(self):
        """Knot + Unbound + a second Pebble validating through Unbound, from a copy of
        scripts/test-dns.sh (its state under target/bench/dns/, apart from `just test`'s)."""
        scripts = os.path.join(BENCH_DIR, "dns", "scripts")
        os.makedirs(scripts, exist_ok=True)
        self.dns_script = os.path.join(scripts, "test-dns.sh")
        shutil.copy2(os.path.join(ROOT, "scripts", "test-dns.sh"), self.dns_script)
        log("starting Knot + Unbound + a DNS-01 Pebble (a copy of scripts/test-dns.sh)")
        self.dns_started = True
        env = dict(os.environ, LANDLORD_TEST_DNS_SERVER=self.env["LANDLORD_TEST_DNS_SERVER"])
        out = subprocess.run([self.dns_script, "start"], cwd=ROOT, env=env, check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        for line in out.splitlines():
            words = shlex.split(line)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                k, v = words[1].split("=", 1)
                self.env[k] = v

    def bench_dns01(self):
        """N' domains certified through their delegated `_acme-challenge` CNAME only (their
        own names point nowhere): the record written on Knot over RFC 2136, seen there
        before the CA is told, validated by Pebble through Unbound."""
        n = self.args.dns01_n if self.args.dns01_n is not None else min(self.args.domains, 50)
        if n <= 0:
            return
        self.dns01_bed()
        self.start_landlord({
            "LANDLORD_DNS_UPDATE_SERVER": self.env["LANDLORD_TEST_DNS_UPDATE_SERVER"],
            "LANDLORD_DNS_UPDATE_TSIG": self.env["LANDLORD_TEST_DNS_UPDATE_TSIG"],
            "LANDLORD_ACME_DNS_ZONE": "acme-dns.test",
            "LANDLORD_ACME_DIRECTORY": self.env["LANDLORD_TEST_DNS01_ACME_DIRECTORY"],
            "LANDLORD_ACME_CA_ROOTS": self.env["LANDLORD_TEST_DNS01_ACME_CA_ROOTS"],
        })
        status, t = http("POST", self.api + "/v1/tenants", {"name": f"dns01-{self.runid}"}, token=ADMIN_TOKEN)
        if status != 201:
            raise BenchError(f"POST /v1/tenants: HTTP {status} {t}")
        key = t["api_key"]
        # Under customer.test: Unbound forwards it to challtestsrv, where the CNAMEs go.
        names = [f"d{i}-{self.runid}.customer.test" for i in range(n)]
        log(f"registering {n} domains with a delegated _acme-challenge (DNS-01)")
        t0 = time.monotonic()
        ids = {}
        for h in names:
            status, d = http("POST", self.api + "/v1/domains", {"hostname": h}, token=key)
            if status != 201:
                raise BenchError(f"POST /v1/domains {h}: HTTP {status} {d}")
            self.dns("/set-cname", {"host": f"_acme-challenge.{h}", "target": d["dcv_delegation"]["value"]})
            http("POST", f"{self.api}/v1/domains/{d['id']}/check", token=key)
            ids[d["id"]] = h
        wall, domains, seen_active, ever_failed, *_ = self.wait_all_active(key, ids, t0)
        per, odd = self.timelines(key, domains, seen_active, MILESTONES)
        code = self.stop_landlord()
        self.results["dns01"] = {
            "n": n,
            "wall": wall,
            "rate": n / wall,
            "latency": summary([p["latency"] for p in per]),
            "phases": {f"{a}->{z}": summary([p[f"{a}->{z}"] for p in per if f"{a}->{z}" in p])
                       for a, z in zip(MILESTONES, MILESTONES[1:])},
            "ever_failed": ever_failed,
            "odd_timelines": odd,
            "exit": code,
            "log_warnings": log_warnings(self.landlord_log),
            "per_domain": per,
        }

    def cleanup(self):
        if self.lego is not None and self.lego.poll() is None:
            self.lego.kill()
            self.lego.wait()
        try:
            self.stop_landlord()
        except Exception as e:  # keep cleaning up
            log(f"stopping landlord: {e}")
        if self.dns_started:
            subprocess.run([self.dns_script, "stop"], cwd=ROOT)
        if self.acme_started:
            subprocess.run([self.acme_script, "stop"], cwd=ROOT)
        if self.db_name:
            drop_database(self.db_admin_url, self.db_name, log)


# ---------------------------------------------------------------- report

PHASE_LABELS = {
    "created->dns_verified": "phase created → DNS verified (queue + DNS check)",
    "dns_verified->order_placed": "phase DNS verified → order placed",
    "order_placed->challenge_ready": "phase order placed → challenge ready",
    "challenge_ready->issued": "phase challenge ready → issued (validation, finalize, download)",
}


def fmt_s(x):
    return f"{x:.2f} s"


def report(b, meta):
    L = b.results["landlord"]
    G = b.results.get("lego")
    n = L["n"]
    rows = [
        ("landlord: wall time, first POST → all active", fmt_s(L["wall"])),
        ("landlord: throughput", f"{L['rate']:.1f} domains/s"),
        ("landlord: per-domain latency p50 (created → issued)", fmt_s(L["latency"]["p50"])),
        ("landlord: per-domain latency p95", fmt_s(L["latency"]["p95"])),
        ("landlord: per-domain latency min / max", f"{fmt_s(L['latency']['min'])} / {fmt_s(L['latency']['max'])}"),
    ]
    for phase, label in PHASE_LABELS.items():
        ph = L["phases"][phase]
        if ph["n"]:
            rows.append((f"landlord: {label}, p50 / p95", f"{fmt_s(ph['p50'])} / {fmt_s(ph['p95'])}"))
    rows += [
        ("landlord: time to POST all N domains, one after another (inside the wall time)",
         fmt_s(L["post_phase"])),
        ("landlord: one POST /v1/domains, p50 / max",
         f"{L['post_latency']['p50'] * 1000:.0f} ms / {L['post_latency']['max'] * 1000:.0f} ms"),
        ("machine CPU busy during the landlord run (all CPUs, any process)", f"{L['machine_cpu_busy'] * 100:.0f} %"),
        ("CPU time used in that run: landlord / Pebble",
         f"{fmt_s(L['landlord_cpu_s'] or float('nan'))} / {fmt_s(L['pebble_cpu_s'] or float('nan'))}"),
    ]
    D = b.results.get("dns01")
    if D:
        rows += [
            (f"DNS-01 (delegated `_acme-challenge`, {D['n']} domains): wall time, first POST → all active",
             fmt_s(D["wall"])),
            ("DNS-01: per-domain latency p50 / p95 (created → issued)",
             f"{fmt_s(D['latency']['p50'])} / {fmt_s(D['latency']['p95'])}"),
        ]
        for phase in ("order_placed->challenge_ready", "challenge_ready->issued"):
            ph = D["phases"][phase]
            if ph["n"]:
                label = {"order_placed->challenge_ready":
                         "phase order placed → record written and seen on Knot",
                         "challenge_ready->issued":
                         "phase record seen → issued (Pebble's lookup through Unbound, finalize)"}[phase]
                rows.append((f"DNS-01: {label}, p50 / p95", f"{fmt_s(ph['p50'])} / {fmt_s(ph['p95'])}"))
    if G:
        label = (f"lego: wall time, {G['n']} sequential runs (measured)")
        rows += [
            (label, fmt_s(G["wall"])),
            ("lego: throughput", f"{G['n'] / G['wall']:.2f} names/s"),
            ("lego: per-name p50 (process start → exit)", fmt_s(G["per_name"]["p50"])),
            ("lego: per-name p95", fmt_s(G["per_name"]["p95"])),
            ("lego: per-name min / max", f"{fmt_s(G['per_name']['min'])} / {fmt_s(G['per_name']['max'])}"),
            (f"lego: runs under {LEGO_FAST:.0f} s (validation done by lego's first check, so no 5 s sleep)",
             f"{sum(1 for t in G['times'] if t < LEGO_FAST)} of {len(G['times'])}"),
        ]
        if G["extrapolated_wall"] is not None:
            lego_n_wall = G["extrapolated_wall"]
            rows.append((f"lego: wall time for {n} names, EXTRAPOLATED (mean per name × {n})",
                         fmt_s(lego_n_wall)))
            ratio_note = "extrapolated lego wall / landlord wall"
        else:
            lego_n_wall = G["wall"]
            ratio_note = "lego wall / landlord wall, both measured"
        if G["failures"]:
            rows.append(("lego: failed runs (not in the per-name numbers)", str(len(G["failures"]))))
        rows += [
            (f"wall-time ratio for {n} names ({ratio_note})", f"{lego_n_wall / L['wall']:.1f}×"),
            ("per-name p50 ratio (one lego run / landlord created → issued, queueing included)", f"{G['per_name']['p50'] / L['latency']['p50']:.1f}×"),
        ]
    width = max(len(r[0]) for r in rows)
    text = "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)
    md = "| Measure | Result |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    return text, md


def throughput_sentence(b, c, single):
    """Is the run slot-bound or machine-bound? Say what the numbers show, nothing more."""
    L = b.results["landlord"]
    bound = c / single
    nproc = int(b.machine_nproc) if str(b.machine_nproc).isdigit() else 1
    available = L["wall"] * nproc
    used = (L["landlord_cpu_s"] or 0) + (L["pebble_cpu_s"] or 0)
    load = b.meta.get("load_before", "unknown")
    cpu = (f"The machine was {L['machine_cpu_busy'] * 100:.0f} % busy meanwhile, but landlord and "
           f"Pebble used only {used:.1f} of the {available:.0f} CPU-seconds its {nproc} CPUs offered: "
           f"the rest was PostgreSQL and other work (load average {load} just before the run).")
    if used > 0.5 * available:
        cpu = (f"landlord and Pebble used {used:.1f} of the {available:.0f} CPU-seconds the "
               f"machine's {nproc} CPUs offered ({L['machine_cpu_busy'] * 100:.0f} % busy in all).")
    if L["rate"] >= 0.75 * bound:
        return (f"{c} slots at that single-issuance time allow at most ~{bound:.0f} domains/s; the run "
                f"reached {L['rate']:.1f}/s, so the worker's concurrency sets the pace. {cpu}")
    return (f"{c} slots at that single-issuance time would allow ~{bound:.0f} domains/s, but the run "
            f"reached only {L['rate']:.1f}/s: something other than the worker's concurrency held it "
            f"back. {cpu}")


def interpretation(b):
    L = b.results["landlord"]
    G = b.results.get("lego")
    c = L["concurrency"]
    acme = summary([p["latency"] - p.get("created->dns_verified", 0) for p in L["per_domain"]])
    queue = L["phases"]["created->dns_verified"]
    parts = [
        f"Landlord is faster over many names because its worker keeps up to {c} orders in flight at "
        f"once (`LANDLORD_WORKER_CONCURRENCY={c}`), all on one shared ACME account registered once, "
        f"and waits for the CA by polling the order at 250 ms with a 1.5× backoff (honouring "
        f"`Retry-After`) instead of sleeping seconds. One issuance, DNS verified → certificate "
        f"stored, took {acme['p50']:.2f} s p50 ({acme['min']:.2f} s at best), mostly waiting: "
        f"250 ms before the first poll of the order (then 375 ms, …) and 250 ms before the first "
        f"poll of the certificate, plus a PostgreSQL write per step. The rest of a domain's latency "
        f"is queueing for one of the {c} slots (created → DNS verified p50 {queue['p50']:.2f} s, "
        f"p95 {queue['p95']:.2f} s), which grows with N and drives p95. "
        + throughput_sentence(b, c, acme["p50"])
    ]
    if G:
        slow = [t for t in G["times"] if t >= LEGO_FAST]
        fast = len(G["times"]) - len(slow)
        slow_p50 = f"{pct(slow, 50):.1f} s" if slow else "n/a"
        parts.append(
            f" lego does one name per process, one after another, and for each it registers or loads "
            f"the account, makes a key, answers the challenge and then checks the authorization "
            f"immediately; if Pebble has not finished validating by then, lego sleeps about 5 s (its "
            f"default when the challenge response carries no `Retry-After`) before checking again. {fast} of "
            f"{len(G['times'])} runs hit that fast path (< {LEGO_FAST:.0f} s); the others took {slow_p50} (p50), "
            f"which is what makes the loop slow: its per-name cost is set by that sleep, not by the CA.")
    D = b.results.get("dns01")
    if D:
        write = D["phases"]["order_placed->challenge_ready"]
        check = D["phases"]["challenge_ready->issued"]
        detours = sum(1 for _, kinds, _ in D["odd_timelines"] if "dns_problem" in kinds)
        parts.append(
            f" The DNS-01 path ({D['n']} names certified through their delegated `_acme-challenge` "
            f"only) took {D['latency']['p50']:.2f} s p50 from POST to certificate: writing the TXT "
            f"record on Knot over RFC 2136 and seeing it there took {write['p50']:.2f} s p50 "
            f"({write['p95']:.2f} s p95) of that, and Pebble's lookup through Unbound plus finalize "
            f"{check['p50']:.2f} s p50. The delegation label is known only after the POST, so a "
            f"domain's first DNS check can run before the benchmark has created its CNAME: "
            f"{detours} of {D['n']} show a `dns_problem` first, and are checked again at once "
            f"(the benchmark's \"check now\" arrived during that first round).")
    parts.append(
        " Pebble ran with `PEBBLE_VA_NOSLEEP=1` (no artificial 0–15 s validation delay) and its "
        "default 5 % `badNonce` rejection. Against Let's Encrypt, network round trips and the "
        "CA's own validation time dominate and its rate limits (e.g. new orders per account per "
        "3 h) cap throughput long before the worker does: read these numbers as client-side "
        "overhead and concurrency, not as production throughput.")
    return "".join(parts)


def write_markdown(b, meta, md_table):
    L = b.results["landlord"]
    G = b.results.get("lego")
    lego_line = ""
    if G:
        what = (f"all {G['n']} names measured" if G["n"] == G["of"]
                else f"only {G['n']} of {G['of']} names measured; the wall time for {G['of']} "
                     f"is extrapolated from their mean, and labelled so")
        lego_line = (f"- lego: {meta['lego_version']}, sequential `lego run` per name ({what}); "
                     f"each run: `{G['cmd']}`\n")
    D = b.results.get("dns01")
    dns01_line = ""
    if D:
        dns01_line = (f"- DNS-01 path: {D['n']} more domains whose own names point nowhere, each with "
                      f"`_acme-challenge.<name>` CNAME'd to its label in `acme-dns.test`; the record is written "
                      f"on Knot over RFC 2136 (TSIG), looked for on Knot directly until it shows, then Pebble "
                      f"(a second one, `scripts/test-dns.sh`) validates through Unbound\n")
    issues = []
    if D and (D["ever_failed"] or D["odd_timelines"] or D["log_warnings"]):
        issues.append(f"DNS-01 path: {len(D['ever_failed'])} failed, {len(D['odd_timelines'])} odd timeline(s), "
                      f"{len(D['log_warnings'])} WARN/ERROR log line(s).")
    if L["ever_failed"]:
        issues.append(f"{len(L['ever_failed'])} domain(s) were seen `failed` before becoming active "
                      f"(e.g. {next(iter(L['ever_failed'].values()))!r}).")
    if L["odd_timelines"]:
        issues.append(f"{len(L['odd_timelines'])} domain(s) had timeline events other than "
                      f"{' / '.join(MILESTONES)} (e.g. {L['odd_timelines'][0][1]}).")
    if L["log_warnings"]:
        issues.append(f"landlord logged {len(L['log_warnings'])} WARN/ERROR line(s); first: "
                      f"`{L['log_warnings'][0][:300]}`")
    if L["exit"] not in (0, None):
        issues.append(f"landlord exited with {L['exit']} after SIGTERM.")
    if G and G["failures"]:
        issues.append(f"{len(G['failures'])} lego run(s) failed: {G['failures'][:3]}")
    anomalies = ("\n**Anomalies seen in this run:**\n\n" + "\n".join(f"- {i}" for i in issues) + "\n"
                 if issues else
                 "\nNo anomalies: every domain went " + " → ".join(MILESTONES) + " exactly once, "
                 "none was ever `failed`, landlord logged no WARN/ERROR line and exited 0 on SIGTERM.\n")
    section = f"""{SECTION}

Command: `{meta['command']}` (runs `{meta['script_command']}`)

- Date: {meta['date']}
- Machine: {meta['machine']['nproc']} CPUs (`nproc`), {meta['machine']['model']}, {meta['machine']['mem']}, {meta['machine']['os']}
- landlord: `target/release/landlord all` at {meta['revision']}, `LANDLORD_WORKER_CONCURRENCY={L['concurrency']}`, `RUST_LOG={meta['rust_log']}`, PostgreSQL {meta['pg_version']} on the same machine
- CA: Pebble {meta['pebble_version']} with `PEBBLE_VA_NOSLEEP=1` (via `scripts/test-acme.sh`), DNS from pebble-challtestsrv; every name is a CNAME to `{TARGET}` → 127.0.0.1
{lego_line}- Load average (1/5/15 min) before the run {meta['load_before']}, after landlord {meta['load_after_landlord']}, after lego {meta.get('load_after_lego', 'n/a')}: other work on the machine skews the numbers
{dns01_line}- N = {L['n']} domains. Landlord's per-domain latency is the domain's `created_at` to its `issued` event (both stamped by PostgreSQL); wall time is from the first `POST /v1/domains` until a `GET /v1/domains` poll (every 100 ms) sees all N `active`. lego's per-name time is one `lego run` process, start to exit.

{md_table}
{anomalies}
{interpretation(b)}
"""
    write_section(ROOT, SECTION, section, log)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--domains", type=int, default=100, help="N domains (default 100)")
    ap.add_argument("--lego-n", type=int, default=None,
                    help="names for the sequential lego loop (default: N, i.e. all; fewer ones are "
                         "extrapolated to N and labelled so; 0 skips lego)")
    ap.add_argument("--dns01-n", type=int, default=None,
                    help="domains for the DNS-01 path (default min(N, 50); 0 skips it)")
    ap.add_argument("--concurrency", type=int, default=16, help="LANDLORD_WORKER_CONCURRENCY (default 16)")
    ap.add_argument("--deadline", type=float, default=600, help="seconds until all N must be active (default 600)")
    ap.add_argument("--rust-log", default="warn", help="RUST_LOG for landlord (default warn)")
    ap.add_argument("--no-build", action="store_true", help="use the existing target/release/landlord")
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    ap.add_argument("--render", metavar="JSON",
                    help="measure nothing: print and write BENCHMARKS.md from a saved "
                         "target/bench/issuance-<runid>.json")
    ap.add_argument("--command-label", default=None,
                    help="the command to record in BENCHMARKS.md (the justfile passes `just bench-issuance N`)")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            saved = json.load(f)
        b = Bench(args)
        b.results = saved["results"]
        return publish(b, saved["meta"], args.render, args.no_write)
    if args.domains < 1:
        ap.error("--domains must be at least 1")

    # SIGTERM / SIGHUP → the same clean-up as Ctrl-C.
    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    os.makedirs(BENCH_DIR, exist_ok=True)
    b = Bench(args)
    script_command = "python3 scripts/bench-issuance.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    meta = {
        "command": args.command_label or script_command,
        "script_command": script_command.strip(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "pebble_version": pkg_version("pebble"),
        "lego_version": pkg_version("lego"),
        "revision": git_revision(ROOT, paths=["crates", "Cargo.lock", "Cargo.toml", "migrations"]),
        "rust_log": args.rust_log,
    }
    try:
        b.build()
        b.database()
        meta["pg_version"] = psql(b.db_admin_url, "show server_version")
        b.acme()
        b.dns_target()
        meta["load_before"] = loadavg()
        b.bench_landlord()
        meta["load_after_landlord"] = loadavg()
        b.bench_dns01()
        b.bench_lego()
        meta["load_after_lego"] = loadavg()
    except BenchError as e:
        log(f"FAILED: {e}")
        b.cleanup()
        return 1
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        b.cleanup()
        return 130
    except BaseException:
        b.cleanup()
        raise
    b.cleanup()

    raw = os.path.join(BENCH_DIR, f"issuance-{b.runid}.json")
    with open(raw, "w") as f:
        json.dump({"meta": meta, "results": b.results}, f, indent=2, default=str)
    return publish(b, meta, raw, args.no_write)


def publish(b, meta, raw, no_write):
    """Print the results; write them into BENCHMARKS.md unless told not to."""
    b.machine_nproc = meta["machine"]["nproc"]
    b.meta = meta
    text, md = report(b, meta)
    L = b.results["landlord"]
    print()
    print(f"Issuance benchmark: N={L['n']}, LANDLORD_WORKER_CONCURRENCY={L['concurrency']}, "
          f"{meta['machine']['nproc']} × {meta['machine']['model']}, {meta['date']}")
    print(text)
    if L["ever_failed"]:
        print(f"\n  ! {len(L['ever_failed'])} domain(s) were seen `failed` before turning active:")
        for d, err in list(L["ever_failed"].items())[:10]:
            print(f"    {d}: {err}")
    if L["odd_timelines"]:
        print(f"\n  ! {len(L['odd_timelines'])} domain(s) had unexpected timeline events:")
        for h, kinds, msgs in L["odd_timelines"][:10]:
            print(f"    {h}: {kinds} {msgs}")
    if L["log_warnings"]:
        print(f"\n  ! landlord logged {len(L['log_warnings'])} WARN/ERROR line(s) "
              f"(target/bench/landlord.log), first ones:")
        for line in L["log_warnings"][:10]:
            print(f"    {line[:400]}")
    if L["exit"] not in (0, None):
        print(f"\n  ! landlord exit status after SIGTERM: {L['exit']}")
    print(f"\n  raw data: {os.path.relpath(raw, ROOT)}")
    if not no_write:
        write_markdown(b, meta, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
