#!/usr/bin/env python3
"""Soak test: short-lived certificates renewed by two workers that keep being killed,
served by two edges to a client that never stops shaking hands.

    just soak                      # 10 minutes, 24 domains
    python3 scripts/soak.py [--minutes 10] [--domains 24] [--cert-minutes 4]

What runs (real processes, real PostgreSQL, no mocks):
  * PostgreSQL from scripts/test-postgres.sh, a fresh database `landlord_soak_<pid>`;
  * pebble-challtestsrv answering 127.0.0.1 for every name (so every domain points at us);
  * `landlord api`, two `landlord worker`s and two `landlord edge`s, with
    LANDLORD_ISSUER=local and LANDLORD_LOCAL_CERT_MINUTES=<cert-minutes>: certificates
    live a few minutes and renew at half their lifetime (minus jitter), so a 10-minute
    run renews every domain several times;
  * a killer: every 5 to 30 s one worker gets SIGKILL (mid-renewal or not) and comes
    back 0 to 5 s later;
  * clients (one thread per edge): TLS handshakes to every domain in turn, verified
    against the local CA with OpenSSL at the current time, sorted into
    ok / expired / refused / other.

Pass: 0 handshakes presented an expired certificate, 0 were refused or failed once every
domain was active, and no certificate was renewed twice (the ledger's `replaces` is
unique, and consecutive certificates of a domain are at least 40 % of a lifetime apart).
Counts are printed at the end and written to target/soak/soak-results.md; exit status 0
means pass.
"""

import argparse
import datetime as dt
import json
import os
import random
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

from harness import (  # scripts/harness.py, shared with bench-edge, bench-issuance and attack
    HarnessError as SoakError, create_database, drop_database, free_port, http, logger, postgres_server, psql,
    register_domain, run_quiet, spawn, wait_port)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK_DIR = os.path.join(ROOT, "target", "soak")
RESULTS_MD = os.path.join(WORK_DIR, "soak-results.md")
ADMIN_TOKEN = "soak-admin"
# Any base64 of 32 bytes: the soak database is thrown away.
MASTER_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
CNAME_TARGET = "edge.soak.test"

log = logger("soak", stamp=True)


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_edge = {}
        self.serials = {}  # hostname -> set of serials seen
        self.samples = []  # (kind, hostname, edge, detail), first few of each failure kind

    def add(self, edge, kind, hostname, detail=None, serial=None):
        with self.lock:
            edge_counts = self.by_edge.setdefault(edge, {})
            edge_counts[kind] = edge_counts.get(kind, 0) + 1
            if serial:
                self.serials.setdefault(hostname, set()).add(serial)
            if kind != "ok" and sum(1 for s in self.samples if s[0] == kind) < 5:
                self.samples.append((kind, hostname, edge, detail))

    def total(self, kind):
        with self.lock:
            return sum(c.get(kind, 0) for c in self.by_edge.values())


def handshake(port, hostname, context):
    """One TLS handshake + GET /; ('ok', serial) or (failure kind, detail)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=hostname) as tls:
                cert = tls.getpeercert()
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n".encode())
                head = tls.recv(64)
                if not head.startswith(b"HTTP/1.1 200"):
                    return "bad_response", head[:32]
                return "ok", cert.get("serialNumber")
    except ssl.SSLCertVerificationError as e:
        if e.verify_code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
            return "expired", e.verify_message
        if e.verify_code == 9:  # X509_V_ERR_CERT_NOT_YET_VALID
            return "not_yet_valid", e.verify_message
        return "verify_failed", f"{e.verify_code} {e.verify_message}"
    except ssl.SSLError as e:
        if "UNRECOGNIZED_NAME" in str(e).upper():
            return "refused", str(e)
        return "tls_error", str(e)
    except OSError as e:
        return "connection_error", str(e)


class Soak:
    def __init__(self, args):
        self.args = args
        self.binary = os.path.join(ROOT, "target", "release" if args.release else "debug", "landlord")
        self.procs = []
        self.db_name = f"landlord_soak_{os.getpid()}"
        self.admin_url = None
        self.stop = threading.Event()
        self.counts = Counts()
        self.kills = 0
        self.workers = {}
        self.results = {}

    # ------------------------------------------------------------------ processes

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LANDLORD_")}
        env.update(
            DATABASE_URL=self.db_url,
            LANDLORD_MASTER_KEY=MASTER_KEY,
            LANDLORD_ADMIN_TOKEN=ADMIN_TOKEN,
            LANDLORD_ISSUER="local",
            LANDLORD_LOCAL_CERT_MINUTES=str(self.args.cert_minutes),
            LANDLORD_CNAME_TARGET=CNAME_TARGET,
            LANDLORD_EDGE_IPS="127.0.0.1",
            LANDLORD_EXTRA_SUFFIXES="test",
            LANDLORD_DNS_SERVERS=f"127.0.0.1:{self.dns_port}",
            LANDLORD_WORKER_LEASE_SECONDS="10",
            LANDLORD_WORKER_CONCURRENCY="4",
            RUST_LOG=os.environ.get("RUST_LOG", "info"),
        )
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start(self, name, cmd, env=None):
        proc = spawn(cmd, os.path.join(WORK_DIR, f"{name}.log"), env=env, append=True)
        self.procs.append(proc)
        return proc

    def start_worker(self, n):
        self.workers[n] = self.start(f"worker{n}", [self.binary, "--no-migrate", "worker"],
                                     env=self.env(LANDLORD_METRICS_ADDR=f"127.0.0.1:{free_port()}"))

    def psql(self, sql):
        return psql(self.db_url, sql)

    # ------------------------------------------------------------------ phases

    def setup(self):
        os.makedirs(WORK_DIR, exist_ok=True)
        for f in os.listdir(WORK_DIR):
            if f.endswith(".log"):
                os.remove(os.path.join(WORK_DIR, f))
        log(f"building {'release' if self.args.release else 'debug'} landlord")
        cmd = ["cargo", "build", "-q", "-p", "landlord"] + (["--release"] if self.args.release else [])
        run_quiet(cmd, timeout=3600)
        for tool in ["pebble-challtestsrv", "psql"]:
            if not any(os.access(os.path.join(d, tool), os.X_OK)
                       for d in os.environ.get("PATH", "").split(":") + ["/usr/bin"]):
                raise SoakError(f"{tool} is missing: apt-get install pebble postgresql-client "
                                "(or run `just test` once, which installs them)")
        self.admin_url = postgres_server()
        self.db_url = create_database(self.admin_url, self.db_name)
        log(f"database {self.db_url}")
        self.dns_port, mgmt_port = free_port(udp_too=True), free_port()
        self.cts_mgmt = f"http://127.0.0.1:{mgmt_port}"
        cts = self.start("challtestsrv", [
            "pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
            "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "",
            "-tlsalpn01", "", "-management", f"127.0.0.1:{mgmt_port}"])
        wait_port(mgmt_port, cts, "pebble-challtestsrv")
        run_quiet([self.binary, "migrate"], env=self.env())
        tenant = json.loads(run_quiet([self.binary, "--no-migrate", "tenant", "create", "soak"],
                                      env=self.env()))
        self.api_key = tenant["api_key"]
        ca = run_quiet([self.binary, "--no-migrate", "ca", "export"], env=self.env())
        self.ca_file = os.path.join(WORK_DIR, "local-ca.pem")
        with open(self.ca_file, "w") as f:
            f.write(ca)

        api_port = free_port()
        api = self.start("api", [self.binary, "--no-migrate", "api"],
                         env=self.env(LANDLORD_API_ADDR=f"127.0.0.1:{api_port}"))
        wait_port(api_port, api, "landlord api")
        self.api = f"http://127.0.0.1:{api_port}"
        self.edges = []
        for n in (1, 2):
            http_port, https_port = free_port(), free_port()
            edge = self.start(f"edge{n}", [self.binary, "--no-migrate", "edge"], env=self.env(
                LANDLORD_HTTP_ADDR=f"127.0.0.1:{http_port}",
                LANDLORD_HTTPS_ADDR=f"127.0.0.1:{https_port}",
                LANDLORD_METRICS_ADDR=f"127.0.0.1:{free_port()}"))
            wait_port(https_port, edge, f"landlord edge {n}")
            self.edges.append(https_port)
        for n in (1, 2):
            self.start_worker(n)

        self.hostnames = [f"site{i:02d}.tenant{i % 5}.soak.example" for i in range(self.args.domains)]
        for host in self.hostnames:
            # Pointed with A records (challtestsrv's default): prove ownership, check now.
            register_domain(self.api, self.api_key, host, self.cts_mgmt)
        st, body = http("PUT", f"{self.api}/v1/files/index.html", b"<h1>soak</h1>",
                        token=self.api_key, content_type="text/html")
        if st != 204:
            raise SoakError(f"PUT index.html: {st} {body}")
        deadline = time.monotonic() + 120
        while True:
            st, body = http("GET", f"{self.api}/v1/domains?limit=1000", token=self.api_key)
            active = sum(1 for d in body["domains"] if d["status"] == "active") if st == 200 else 0
            if active == len(self.hostnames):
                break
            if time.monotonic() > deadline:
                raise SoakError(f"only {active} of {len(self.hostnames)} domains became active")
            time.sleep(0.5)
        log(f"{len(self.hostnames)} domains active; certificates live {self.args.cert_minutes} min")

    def client(self, port):
        context = ssl.create_default_context(cafile=self.ca_file)
        while not self.stop.is_set():
            for host in self.hostnames:
                if self.stop.is_set():
                    break
                kind, detail = handshake(port, host, context)
                if kind == "ok":
                    self.counts.add(port, "ok", host, serial=detail)
                else:
                    self.counts.add(port, kind, host, detail=detail)

    def killer(self):
        rng = random.Random(self.args.seed)
        while not self.stop.wait(rng.uniform(5, 30)):
            n = rng.choice(sorted(self.workers))
            proc = self.workers[n]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.kills += 1
            log(f"SIGKILL worker {n} (kill #{self.kills})")
            if self.stop.wait(rng.uniform(0, 5)):
                break
            self.start_worker(n)

    def run(self):
        threads = [threading.Thread(target=self.client, args=(p,), daemon=True) for p in self.edges]
        threads.append(threading.Thread(target=self.killer, daemon=True))
        for t in threads:
            t.start()
        end = time.monotonic() + self.args.minutes * 60
        while time.monotonic() < end:
            time.sleep(min(30, max(0, end - time.monotonic())))
            renewals = self.psql("SELECT count(*) FROM ca_ledger WHERE kind = 'certificate' AND replaces IS NOT NULL")
            log(f"{self.counts.total('ok')} handshakes ok, {self.counts.total('expired')} expired, "
                f"{self.counts.total('refused')} refused; {renewals} renewals; {self.kills} worker kills")
        self.stop.set()
        for t in threads:
            t.join(timeout=15)

    def verdict(self):
        lifetime_s = (self.args.cert_minutes + 1) * 60  # the local CA back-dates by a minute
        q = self.psql
        certs = int(q("SELECT count(*) FROM ca_ledger WHERE kind = 'certificate'"))
        renewals = int(q("SELECT count(*) FROM ca_ledger WHERE kind = 'certificate' AND replaces IS NOT NULL"))
        doubled = int(q("SELECT count(*) FROM (SELECT replaces FROM ca_ledger WHERE kind = 'certificate' "
                        "AND replaces IS NOT NULL GROUP BY replaces HAVING count(*) > 1) x"))
        gaps = q("SELECT COALESCE(MIN(gap), 0), COALESCE(MAX(gap), 0) FROM (SELECT EXTRACT(EPOCH FROM at - "
                 "lag(at) OVER (PARTITION BY domain_id ORDER BY at))::float8 AS gap FROM ca_ledger "
                 "WHERE kind = 'certificate') x WHERE gap IS NOT NULL").split("|")
        per_domain = q("SELECT MIN(n), MAX(n) FROM (SELECT count(*) - 1 AS n FROM ca_ledger "
                       "WHERE kind = 'certificate' GROUP BY domain_id) x").split("|")
        expired_rows = int(q("SELECT count(*) FROM certificates WHERE not_after < now()"))
        failures = {k: self.counts.total(k) for k in
                    ["expired", "refused", "not_yet_valid", "verify_failed", "tls_error",
                     "connection_error", "bad_response"]}
        ok = self.counts.total("ok")
        min_gap = float(gaps[0])
        r = self.results
        r.update(
            minutes=self.args.minutes, domains=len(self.hostnames), cert_minutes=self.args.cert_minutes,
            handshakes_ok=ok, failures=failures, worker_kills=self.kills,
            certificates=certs, renewals=renewals, renewed_twice=doubled,
            renewals_per_domain_min=int(per_domain[0]), renewals_per_domain_max=int(per_domain[1]),
            min_gap_s=round(min_gap, 1), max_gap_s=round(float(gaps[1]), 1),
            serials_seen=sum(len(s) for s in self.counts.serials.values()),
            expired_in_db_at_end=expired_rows,
            handshakes_by_edge={str(k): v for k, v in self.counts.by_edge.items()},
        )
        problems = []
        if failures["expired"]:
            problems.append(f"{failures['expired']} handshakes presented an expired certificate")
        bad = sum(v for k, v in failures.items() if k != "expired")
        if bad:
            problems.append(f"{bad} handshakes failed otherwise: {failures}")
        if doubled:
            problems.append(f"{doubled} certificates were renewed twice")
        # A renewal is due at half the lifetime, minus up to 1/20 of it as jitter; the
        # local CA back-dates by 60 s. Two certificates of one domain closer than that
        # would mean a domain renewed twice in one window.
        earliest_gap = 0.45 * lifetime_s - 60 - 2
        r["earliest_allowed_gap_s"] = round(earliest_gap, 1)
        if renewals and min_gap < earliest_gap:
            problems.append(f"two certificates of one domain {min_gap:.0f} s apart "
                            f"(a renewal is never due before {earliest_gap:.0f} s)")
        if r["renewals_per_domain_min"] < 1:
            problems.append("some domain was never renewed: run longer or shorten --cert-minutes")
        if expired_rows:
            problems.append(f"{expired_rows} stored certificates had expired at the end")
        r["problems"] = problems
        return not problems

    def write(self, passed, command):
        r = self.results
        lines = [
            "# Soak test", "",
            f"Command: `{command}`", "",
            f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
            f"- Result: **{'PASS' if passed else 'FAIL'}**",
            f"- {r['domains']} domains, certificates valid {r['cert_minutes']} min (+1 min back-dating), "
            f"{r['minutes']} min, 2 workers (SIGKILLed {r['worker_kills']} times), 2 edges", "",
            "| Measure | Value |", "|---|---|",
            f"| handshakes ok (verified, not expired) | {r['handshakes_ok']} |",
        ]
        for k, v in r["failures"].items():
            lines.append(f"| handshakes {k} | {v} |")
        lines += [
            f"| certificates issued (first + renewals) | {r['certificates']} |",
            f"| renewals | {r['renewals']} |",
            f"| renewals per domain, min / max | {r['renewals_per_domain_min']} / {r['renewals_per_domain_max']} |",
            f"| certificates renewed twice | {r['renewed_twice']} |",
            f"| gap between consecutive certificates of a domain, min / max (never due before {r['earliest_allowed_gap_s']} s) | {r['min_gap_s']} s / {r['max_gap_s']} s |",
            f"| distinct serials seen by the clients | {r['serials_seen']} |",
            f"| worker SIGKILLs | {r['worker_kills']} |",
        ]
        if r["problems"]:
            lines += ["", "Problems:"] + [f"- {p}" for p in r["problems"]]
        if self.counts.samples:
            lines += ["", "First failures:"] + [f"- {k} {h} (edge {e}): {d}" for k, h, e, d in self.counts.samples]
        text = "\n".join(lines) + "\n"
        with open(RESULTS_MD, "w") as f:
            f.write(text)
        with open(os.path.join(WORK_DIR, "soak-results.json"), "w") as f:
            json.dump(r, f, indent=2)
        print(text)

    def cleanup(self):
        self.stop.set()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.admin_url:
            drop_database(self.admin_url, self.db_name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--domains", type=int, default=24)
    ap.add_argument("--cert-minutes", type=int, default=4)
    ap.add_argument("--seed", type=int, default=None, help="seed for the killer's choices")
    ap.add_argument("--release", action="store_true", help="soak the release build")
    ap.add_argument("--command-label", default=None)
    args = ap.parse_args()
    command = (args.command_label or "").strip() or shlex.join(["python3", "scripts/soak.py"] + sys.argv[1:])
    soak = Soak(args)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        soak.setup()
        soak.run()
        passed = soak.verdict()
        soak.write(passed, command)
    except SoakError as e:
        log(f"error: {e}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        soak.cleanup()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
