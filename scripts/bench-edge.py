#!/usr/bin/env python3
"""Edge benchmark: `landlord edge` against nginx, the same page over the same kind of
certificate, side by side in one run, measured as server CPU time per unit of work.

    just bench
    python3 scripts/bench-edge.py [--duration 10] [--connections 16] [--domains 10000,100000]

On a 2-core machine the load generator saturates its core before the server does, so
requests/s mostly measure the client. The primary measure is the server's CPU time
(utime + stime from /proc/PID/stat, every thread, read before and after each load phase)
divided by the work the client completed:

  * new connection, full TLS 1.3 handshake, one request
        (h2load --h1 with one client per connection at a fixed rate, the same for both)
  * new connection resuming a TLS 1.3 session, one request
        (wrk -H 'Connection: close': wrk keeps each connection's TLS session across
        reconnects, so it resumes with a session ticket; both servers accept tickets)
  * keep-alive HTTP/1.1 request                  (wrk)
  * HTTP/2 request, 10 streams per connection    (h2load -m 10)

Both servers run pinned to core 0 (`taskset -c 0`; nginx with one process,
`master_process off`; the edge's Tokio runtime sizes itself to the one allowed core) and
the load generator to core 1. Phases alternate between the servers, so drift on the
machine hits both. Also reported: p50/p99 latency (wrk --latency), the edge's VmRSS with
the first and the second --domains count registered (only the benchmarked name gets its
certificate cached), and the crypto floor from `openssl speed` on core 0.

What it does (Python 3 standard library only):
  1. installs nginx-light, wrk, nghttp2-client (and pebble for pebble-challtestsrv) with
     apt-get when missing, without letting the package start a system nginx;
  2. `cargo build --release -p landlord` (--no-build skips it; LANDLORD_BENCH_BINARY=PATH
     uses another build, e.g. one with frame pointers for --perf);
  3. a fresh database `landlord_bench_edge_<pid>` on the server scripts/test-postgres.sh
     names; `landlord migrate`; `landlord tenant create bench`;
  4. Landlord issues the certificate itself: `landlord all` with LANDLORD_ISSUER=local,
     DNS from a pebble-challtestsrv that answers 127.0.0.1 for every name
     (LANDLORD_EDGE_IPS=127.0.0.1); the domain is POSTed and index.html PUT through the
     REST API, and the process stops once the domain is active (ECDSA P-256 leaf + the
     local CA: a chain of two);
  5. nginx gets its own openssl-made chain of the same shape (P-256 CA, P-256 leaf, SAN
     bench.example.com, ecdsa-with-SHA256) because the edge's key is sealed in the
     database;
  6. filler hostnames are inserted with SQL so that the database holds N domains;
  7. /etc/hosts gets `127.0.0.1 bench.example.com` for the run (wrk has no SNI
     override); the original file is written back at the end;
  8. results go to target/bench/edge-results.md (Markdown) and
     target/bench/edge-<runid>.json (raw numbers).

Everything it starts is stopped, /etc/hosts restored and the database dropped on exit
(also on Ctrl-C, SIGTERM or failure).
"""

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

from harness import (  # scripts/harness.py, shared with bench-issuance, soak and attack
    HarnessError as BenchError, cargo_build, create_database, drop_database, free_port, git_revision, http,
    loadavg, log_warnings, logger, machine_facts, pkg_version, postgres_server, proc_cpu_ticks, psql,
    register_domain, run_quiet, spawn, terminate, wait_port)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "target", "bench")
WORK_DIR = os.path.join(BENCH_DIR, "edge")
BINARY = os.environ.get("LANDLORD_BENCH_BINARY") or os.path.join(ROOT, "target", "release", "landlord")
RESULTS_MD = os.path.join(BENCH_DIR, "edge-results.md")
HOST = "bench.example.com"
CNAME_TARGET = "edge.bench.test"
FILLER_SUFFIX = "filler.bench-edge.example"
ADMIN_TOKEN = "bench-admin"
# Any base64 of 32 bytes (the e2e tests' key): the bench database is thrown away.
MASTER_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
HOSTS_FILE = "/etc/hosts"
SERVER_CORE = "0"
CLIENT_CORE = "1"
TICK_US = 1_000_000 / os.sysconf("SC_CLK_TCK")
# binary -> Debian package providing it
PACKAGES = {
    "nginx": "nginx-light",
    "wrk": "wrk",
    "h2load": "nghttp2-client",
    "pebble-challtestsrv": "pebble",
    "openssl": "openssl",
    "curl": "curl",
    "psql": "postgresql-client",
    "taskset": "util-linux",
}


log = logger("bench-edge")


class Interrupted(BaseException):
    pass


def on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


# ---------------------------------------------------------------- small helpers

def descendants(pid):
    """pid and every live descendant (nginx's worker, if it had a master)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pid):
    total = 0
    for p in descendants(pid):
        try:
            total += proc_cpu_ticks(p)
        except OSError:
            pass
    return total


def write_calls(pid):
    """write/writev system calls of a process and its descendants (syscw in /proc/PID/io;
    send/sendmsg are not counted there, but both servers write TLS records with writev)."""
    writes = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/io") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            writes += int(fields["syscw"])
        except (OSError, KeyError, ValueError):
            pass
    return writes


def core_busy_ticks():
    """Busy clock ticks per CPU from /proc/stat: user, nice, system, irq, softirq (not idle,
    iowait or steal)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+)\s+(.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                out[m.group(1)] = v[0] + v[1] + v[2] + v[5] + v[6]
    return out


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    return None


def rss_kib(pid):
    return sum(int((proc_status(p, "VmRSS") or "0 kB").split()[0]) for p in descendants(pid))


def threads(pid):
    return int(proc_status(pid, "Threads") or 0)


def machine():
    facts = machine_facts()
    distro = facts["distro"] or platform.system()
    return (f"{os.cpu_count()} CPUs (`nproc`), {facts['model']}, {facts['mem']}, {distro}, "
            f"Linux {platform.release()}")


def nginx_http_basics(d):
    """The first lines of an nginx `http` block for a server under d: no access log, HTML
    typed, every temporary path under d/tmp (no trailing newline)."""
    return f"""    access_log off;
    types {{ text/html html; }}
    default_type application/octet-stream;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;"""


def pem_blocks(pem):
    """DER bytes of each certificate in a PEM string."""
    import base64

    return [
        base64.b64decode("".join(m.group(1).split()))
        for m in re.finditer(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem, re.S)
    ]


# ---------------------------------------------------------------- the run

class Bench:
    def __init__(self, args):
        self.args = args
        self.procs = []  # (name, Popen) we started, stopped in reverse order
        self.hosts_line = None
        self.policy_rc_created = False
        self.admin_url = None
        self.db_name = f"landlord_bench_edge_{os.getpid()}"
        self.db_url = None
        self.run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.notes = []
        self.results = {"run_id": self.run_id, "phases": [], "rss": []}

    # ------------------------------------------------------------ processes

    def start(self, name, cmd, env=None, logfile=None):
        p = spawn(cmd, logfile, env=env)
        self.procs.append((name, p))
        return p

    def stop(self, proc, timeout=15):
        terminate(proc, timeout)
        self.procs = [(n, p) for n, p in self.procs if p is not proc]
        return proc.returncode

    def cleanup(self):
        for name, p in reversed(self.procs):
            try:
                rc = self.stop(p, timeout=10)
                log(f"stopped {name} (exit {rc})")
            except Exception as e:  # keep cleaning up
                log(f"could not stop {name}: {e}")
        self.restore_hosts()
        if self.policy_rc_created:
            try:
                os.unlink("/usr/sbin/policy-rc.d")
            except OSError:
                pass
        if self.admin_url:
            drop_database(self.admin_url, self.db_name, log)

    # ------------------------------------------------------------ setup

    def install_missing(self):
        missing = sorted({pkg for binary, pkg in PACKAGES.items() if not shutil.which(binary)})
        if not missing:
            return
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        log(f"installing {' '.join(missing)} (apt-get)")
        # Debian's nginx packages start the system nginx on install; refuse that for the
        # install (policy-rc.d, the standard switch for invoke-rc.d), then remove the switch.
        if os.geteuid() == 0 and not os.path.exists("/usr/sbin/policy-rc.d"):
            with open("/usr/sbin/policy-rc.d", "w") as f:
                f.write("#!/bin/sh\n# bench-edge.py: no service starts during its apt-get install\nexit 101\n")
            os.chmod("/usr/sbin/policy-rc.d", 0o755)
            self.policy_rc_created = True
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run_quiet(sudo + ["apt-get", "update", "-qq"], env=env)
        run_quiet(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing, env=env)
        if self.policy_rc_created:
            os.unlink("/usr/sbin/policy-rc.d")
            self.policy_rc_created = False
        still = [b for b in PACKAGES if not shutil.which(b)]
        if still:
            raise BenchError(f"still missing after apt-get install: {', '.join(still)}")

    def build(self):
        if self.args.no_build or os.environ.get("LANDLORD_BENCH_BINARY"):
            if not os.access(BINARY, os.X_OK):
                raise BenchError(f"{BINARY} is missing (run without --no-build)")
            return
        log("cargo build --release -p landlord")
        cargo_build(ROOT)

    def landlord_env(self, **extra):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("LANDLORD_"):
                del env[k]
        env.update(DATABASE_URL=self.db_url, LANDLORD_MASTER_KEY=MASTER_KEY, RUST_LOG="warn")
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def psql(self, sql):
        return psql(self.db_url, sql)

    def database(self):
        self.admin_url = postgres_server()
        self.db_url = create_database(self.admin_url, self.db_name)
        log(f"database {self.db_url}")
        run_quiet([BINARY, "migrate"], env=self.landlord_env())
        self.results["postgres"] = self.psql("SHOW server_version")

    def issue_certificate(self, index_html, page_html):
        """Let Landlord issue bench.example.com itself (local CA) and store index.html."""
        tenant = json.loads(run_quiet([BINARY, "--no-migrate", "tenant", "create", "bench"],
                                      env=self.landlord_env()))
        self.tenant_id, api_key = tenant["id"], tenant["api_key"]
        dns_port, mgmt_port = free_port(udp_too=True), free_port()
        cts = self.start("pebble-challtestsrv", [
            "pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
            "-dns01", f"127.0.0.1:{dns_port}", "-http01", "", "-https01", "", "-tlsalpn01", "",
            "-management", f"127.0.0.1:{mgmt_port}"],
            logfile=os.path.join(WORK_DIR, "challtestsrv.log"))
        wait_port(mgmt_port, cts, "pebble-challtestsrv")
        api_port, http_port, https_port = free_port(), free_port(), free_port()
        env = self.landlord_env(
            LANDLORD_API_ADDR=f"127.0.0.1:{api_port}",
            LANDLORD_HTTP_ADDR=f"127.0.0.1:{http_port}",
            LANDLORD_HTTPS_ADDR=f"127.0.0.1:{https_port}",
            LANDLORD_ADMIN_TOKEN=ADMIN_TOKEN,
            LANDLORD_ISSUER="local",
            LANDLORD_CNAME_TARGET=CNAME_TARGET,
            LANDLORD_EDGE_IPS="127.0.0.1",
            LANDLORD_EXTRA_SUFFIXES="test",
            LANDLORD_DNS_SERVERS=f"127.0.0.1:{dns_port}",
        )
        all_proc = self.start("landlord all (issuance)", [BINARY, "--no-migrate", "all"], env=env,
                              logfile=os.path.join(WORK_DIR, "landlord-all.log"))
        wait_port(api_port, all_proc, "landlord all")
        api = f"http://127.0.0.1:{api_port}"
        # Pointed with an A record (challtestsrv's default answer): prove ownership with
        # the TXT record, then check now.
        register_domain(api, api_key, HOST, f"http://127.0.0.1:{mgmt_port}")
        for path, content in (("index.html", index_html), (PAGE_PATH, page_html)):
            st, body = http("PUT", f"{api}/v1/files/{path}", content, token=api_key,
                            content_type="text/html; charset=utf-8")
            if st != 204:
                raise BenchError(f"PUT /v1/files/{path} answered {st}: {body}")
        deadline = time.monotonic() + 60
        while True:
            st, body = http("GET", f"{api}/v1/domains", token=api_key)
            status = body["domains"][0]["status"] if st == 200 and body.get("domains") else None
            # The worker in `all` also stores the page's compressed bodies.
            compressed = self.psql("SELECT count(*) FROM blobs WHERE NOT variants_done") == "0"
            if status == "active" and compressed:
                break
            if status == "failed" or time.monotonic() > deadline:
                raise BenchError(f"{HOST} did not become active (last answer {st}: {body})")
            time.sleep(0.2)
        self.stop(all_proc)
        self.stop(cts)
        chain = self.psql(f"SELECT chain_pem FROM certificates WHERE hostname = '{HOST}'")
        ca = run_quiet([BINARY, "--no-migrate", "ca", "export"], env=self.landlord_env())
        self.landlord_chain = os.path.join(WORK_DIR, "landlord-chain.pem")
        self.landlord_ca = os.path.join(WORK_DIR, "landlord-ca.pem")
        with open(self.landlord_chain, "w") as f:
            f.write(chain + "\n")
        with open(self.landlord_ca, "w") as f:
            f.write(ca)
        log(f"{HOST} is active with a Landlord-issued certificate")

    def nginx_certificate(self):
        d = os.path.join(WORK_DIR, "nginx")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        run_quiet(["openssl", "req", "-x509", *ec, "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem",
                   "-days", "30", "-sha256", "-subj", "/CN=bench-edge nginx CA"])
        run_quiet(["openssl", "req", *ec, "-keyout", f"{d}/key.pem", "-out", f"{d}/leaf.csr",
                   "-subj", "/", "-sha256"])
        with open(f"{d}/ext.cnf", "w") as f:
            f.write(f"subjectAltName=DNS:{HOST}\nbasicConstraints=CA:FALSE\n")
        run_quiet(["openssl", "x509", "-req", "-in", f"{d}/leaf.csr", "-CA", f"{d}/ca.pem",
                   "-CAkey", f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/leaf.pem",
                   "-days", "30", "-sha256", "-extfile", f"{d}/ext.cnf"])
        with open(f"{d}/leaf.pem") as a, open(f"{d}/ca.pem") as b, open(f"{d}/chain.pem", "w") as out:
            out.write(a.read() + b.read())
        self.nginx_chain, self.nginx_ca, self.nginx_key = f"{d}/chain.pem", f"{d}/ca.pem", f"{d}/key.pem"

    def fill_domains(self, total):
        """Insert filler hostnames so that the domains table holds `total` rows."""
        have = int(self.psql("SELECT count(*) FROM domains"))
        if have >= total:
            return
        first = int(self.psql(f"SELECT count(*) FROM domains WHERE hostname LIKE '%.{FILLER_SUFFIX}'"))
        n = total - have
        t0 = time.monotonic()
        self.psql(
            "INSERT INTO domains (id, tenant_id, hostname, status, site_id) "
            f"SELECT gen_random_uuid(), '{self.tenant_id}', 'd' || i || '.{FILLER_SUFFIX}', 'pending_dns', "
            f"(SELECT id FROM sites WHERE tenant_id = '{self.tenant_id}' AND is_default) "
            f"FROM generate_series({first + 1}, {first + n}) AS i"
        )
        log(f"inserted {n} filler domains ({time.monotonic() - t0:.1f} s); {total} registered")

    def hosts_add(self):
        with open(HOSTS_FILE) as f:
            current = f.read()
        self.hosts_line = f"127.0.0.1 {HOST} # bench-edge.py pid {os.getpid()}, removed at exit"
        sep = "" if current.endswith("\n") or not current else "\n"
        with open(HOSTS_FILE, "a") as f:  # in place: /etc/hosts is often a bind mount
            f.write(f"{sep}{self.hosts_line}\n")
        resolved = socket.gethostbyname(HOST)
        if resolved != "127.0.0.1":
            raise BenchError(f"{HOST} resolves to {resolved}, not 127.0.0.1, despite {HOSTS_FILE}")

    def restore_hosts(self):
        if not self.hosts_line:
            return
        try:
            with open(HOSTS_FILE) as f:
                lines = f.read().split("\n")
            kept = [l for l in lines if l != self.hosts_line]
            with open(HOSTS_FILE, "w") as f:
                f.write("\n".join(kept))
            self.hosts_line = None
            log(f"{HOSTS_FILE} restored")
        except OSError as e:
            log(f"could not restore {HOSTS_FILE}: {e} (remove the line for {HOST} by hand)")

    # ------------------------------------------------------------ servers

    def start_nginx(self, www):
        d = os.path.join(WORK_DIR, "nginx")
        port = free_port()
        version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
        m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", version)
        ver = tuple(int(x) for x in m.groups()) if m else (0, 0, 0)
        self.results["nginx_version"] = ".".join(map(str, ver))
        h2_listen, h2_directive = ((" http2", "") if ver < (1, 25, 1) else ("", "\n        http2 on;"))
        tickets = "on" if self.args.nginx_tickets == "on" else "off"
        for sub in ("tmp", "logs"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        conf = f"""# written by scripts/bench-edge.py
worker_processes 1;
error_log {d}/logs/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
{nginx_http_basics(d)}
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} ssl{h2_listen};{h2_directive}
        server_name {HOST};
        ssl_certificate {self.nginx_chain};
        ssl_certificate_key {self.nginx_key};
        ssl_protocols TLSv1.3 TLSv1.2;
        ssl_session_cache off;
        ssl_session_tickets {tickets};
        root {www};
        index index.html;
        gzip_static on;
    }}
}}
"""
        p = self.run_nginx(d, conf, port, check=True)
        return {"name": "nginx", "proc": p, "port": port, "ca": self.nginx_ca}

    def run_nginx(self, d, conf, port, check=False):
        """Write conf to d/nginx.conf and start nginx with it (in the foreground, one process,
        on the server core; `nginx -t` first with check), until it listens on port."""
        conf_path = os.path.join(d, "nginx.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        opts = ["-p", d, "-e", f"{d}/logs/error.log", "-c", conf_path, "-g", "daemon off; master_process off;"]
        if check:
            run_quiet(["nginx", "-t", "-q", *opts])
        p = self.start("nginx", ["taskset", "-c", SERVER_CORE, "nginx", *opts],
                       logfile=os.path.join(d, "logs", "stdout.log"))
        wait_port(port, p, "nginx")
        return p

    def start_edge(self, label):
        http_port, https_port = free_port(), free_port()
        env = self.landlord_env(
            LANDLORD_HTTP_ADDR=f"127.0.0.1:{http_port}",
            LANDLORD_HTTPS_ADDR=f"127.0.0.1:{https_port}",
            LANDLORD_HSTS="off",
        )
        logfile = os.path.join(WORK_DIR, f"edge-{label}.log")
        t0 = time.monotonic()
        p = self.start(f"landlord edge ({label})",
                       ["taskset", "-c", SERVER_CORE, BINARY, "--no-migrate", "edge"], env=env,
                       logfile=logfile)
        wait_port(https_port, p, "landlord edge")
        return {"name": "landlord", "proc": p, "port": https_port, "ca": self.landlord_ca,
                "log": logfile, "startup_s": time.monotonic() - t0}

    def verify_page(self, server, page_html):
        """The browser phases' page: compressed on the wire (the encoding is recorded), and
        the same bytes once decoded (curl --compressed), over HTTP/1.1 and HTTP/2."""
        url = f"https://{HOST}:{server['port']}/{PAGE_PATH}"
        for flag in ("--http1.1", "--http2"):
            out = subprocess.run(
                ["curl", "-sS", flag, "--compressed", "-H", f"Accept-Encoding: {BROWSER_ACCEPT_ENCODING}",
                 "--cacert", server["ca"], "--resolve", f"{HOST}:{server['port']}:127.0.0.1",
                 "-o", "-", "-w", "\n%{http_code} %{size_download} %header{content-encoding}", url],
                capture_output=True, timeout=20)
            body, _, tail = out.stdout.rpartition(b"\n")
            fields = tail.decode().split()
            if out.returncode != 0 or len(fields) != 3 or fields[0] != "200" or body != page_html:
                raise BenchError(f"{server['name']}: {url} {flag} answered {tail.decode()!r} "
                                 f"{out.stderr.decode().strip()}, body {'equal' if body == page_html else 'different'}")
            self.results.setdefault("page_wire", {})[server["name"]] = {
                "encoding": fields[2], "bytes": int(fields[1])}

    def verify(self, server, index_html):
        """One HTTP/1.1 and one HTTP/2 request with certificate verification, the page
        compared byte for byte; plus what TLS was negotiated (and how many tickets sent)."""
        url = f"https://{HOST}:{server['port']}/"
        for flag, want in (("--http1.1", "1.1"), ("--http2", "2")):
            out = subprocess.run(
                ["curl", "-sS", flag, "--cacert", server["ca"], "--resolve", f"{HOST}:{server['port']}:127.0.0.1",
                 "-o", "-", "-w", "\n%{http_code} %{http_version}", url],
                capture_output=True, timeout=20)
            if out.returncode != 0:
                raise BenchError(f"{server['name']}: curl {flag} {url} failed: {out.stderr.decode().strip()}")
            body, _, tail = out.stdout.rpartition(b"\n")
            code, version = tail.decode().split()
            if code != "200" or version != want or body != index_html:
                raise BenchError(f"{server['name']}: {url} answered {code} over HTTP/{version}, "
                                 f"body {'equal' if body == index_html else 'different'}")
        request = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
        session = os.path.join(WORK_DIR, f"session-{server['name']}.pem")

        def s_client(*extra):
            s = subprocess.run(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{server['port']}", "-servername", HOST,
                 "-CAfile", server["ca"], "-ign_eof", *extra],
                input=request.encode(), capture_output=True, timeout=20)
            return s.stdout.decode(errors="replace") + s.stderr.decode(errors="replace")

        text = s_client("-sess_out", session)
        # a second connection offering the first one's ticket: does the server resume?
        resumed = re.search(r"^Reused, (TLSv[\d.]+)", s_client("-sess_in", session), re.M)

        def grab(pattern):
            m = re.search(pattern, text)
            return m.group(1).strip() if m else "?"

        server["tls"] = {
            "protocol": grab(r"New, (TLSv[\d.]+)"),
            "cipher": grab(r"Cipher is (\S+)"),
            "group": grab(r"Server Temp Key: ([^\n]+)"),
            "signature": grab(r"Peer signature type: ([^\n]+)"),
            "tickets": text.count("Post-Handshake New Session Ticket arrived"),
            "verify": grab(r"Verify return code: ([^\n]+)"),
            "resumes": bool(resumed),
        }

    # ------------------------------------------------------------ load

    def run_client(self, cmd, timeout):
        """Run a load generator on the client core; (stdout, its CPU seconds)."""
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=False)
        self.procs.append(("load generator", p))
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        self.procs = [(n, q) for n, q in self.procs if q is not p]
        text = out.decode(errors="replace")
        if p.returncode != 0:
            raise BenchError(f"{shlex.join(cmd)} exited {p.returncode}:\n{text}")
        return text, usage.ru_utime + usage.ru_stime

    def phase(self, server, kind, duration, record=True, label=None):
        browser = kind.startswith("browser")
        url = f"https://{HOST}:{server['port']}/" + (PAGE_PATH if browser else "")
        accept = ["-H", f"Accept-Encoding: {BROWSER_ACCEPT_ENCODING}"] if browser else []
        c = str(self.args.connections)
        if kind == "full":
            # One h2load client per connection, created at a fixed rate: every client has a
            # fresh TLS session, so every handshake is a full one (wrk and h2load's reconnects
            # resume the previous session instead).
            per_period, period_ms = rate_period(self.args.handshake_rate)
            total = per_period * round(duration * 1000 / period_ms)
            cmd = ["taskset", "-c", CLIENT_CORE, "h2load", "--h1", "-t", "1", "-n", str(total), "-c", str(total),
                   "-r", str(per_period), "--rate-period", f"{period_ms}ms", "-N", "10s", url]
        elif kind in ("h2", "browser-h2"):
            cmd = ["taskset", "-c", CLIENT_CORE, "h2load", "-t", "1", "-c", c, "-m", "10",
                   "-D", str(duration), *accept, url]
        else:
            cmd = ["taskset", "-c", CLIENT_CORE, "wrk", "-t1", f"-c{c}", f"-d{duration}s", "--latency",
                   *accept]
            if kind == "resumed":
                cmd += ["-H", "Connection: close"]
            cmd.append(url)
        pid = server["proc"].pid
        if server["proc"].poll() is not None:
            raise BenchError(f"{server['name']} exited ({server['proc'].returncode})")
        waited = self.wait_quiet(f"{label or server['name']} {KIND_LABEL[kind]}") if record else 0
        cores_before = core_busy_ticks()
        before = cpu_ticks(pid)
        writes_before = write_calls(pid)
        t0 = time.monotonic()
        out, client_cpu = self.run_client(cmd, timeout=duration + 60)
        time.sleep(0.3)  # let the server finish closing the last connections
        after = cpu_ticks(pid)
        writes_after = write_calls(pid)
        cores_after = core_busy_ticks()
        wall = time.monotonic() - t0
        if not record:
            return None
        r = parse_h2load(out) if kind in ("h2", "browser-h2", "full") else parse_wrk(out)
        r.update(server=label or server["name"], kind=kind, command=shlex.join(cmd[3:]),
                 wall_s=wall, server_cpu_us=(after - before) * TICK_US, client_cpu_s=client_cpu,
                 rss_kib=rss_kib(pid))
        r["cpu_us_per_unit"] = r["server_cpu_us"] / r["requests"] if r["requests"] else float("nan")
        # write system calls per unit: how well a server batches its responses
        r["writes_per_unit"] = (writes_after - writes_before) / r["requests"] if r["requests"] else float("nan")
        r["server_busy"] = r["server_cpu_us"] / 1e6 / wall
        r["client_busy"] = client_cpu / wall
        # everything that ran on each core (the server, the client, softirqs, and any other
        # work on the machine): tells a quiet phase from a disturbed one
        r["core0_busy"] = (cores_after[SERVER_CORE] - cores_before[SERVER_CORE]) * TICK_US / 1e6 / wall
        r["core1_busy"] = (cores_after[CLIENT_CORE] - cores_before[CLIENT_CORE]) * TICK_US / 1e6 / wall
        r["other_core0"] = max(0.0, r["core0_busy"] - r["server_busy"])
        r["other_core1"] = max(0.0, r["core1_busy"] - r["client_busy"])
        r["disturbed"] = max(r["other_core0"], r["other_core1"]) > self.args.quiet_below / 100
        r["waited_for_quiet_s"] = waited
        r["raw"] = out
        problems = []
        if r.get("errors"):
            problems.append(f"socket errors {r['errors']}")
        if r.get("non_2xx"):
            problems.append(f"{r['non_2xx']} non-2xx responses")
        if kind in ("h2", "browser-h2") and r.get("protocol") != "h2":
            problems.append(f"h2load negotiated {r.get('protocol')!r}, not h2")
        if kind in ("h2", "browser-h2", "full") and r.get("tls_protocol") != "TLSv1.3":
            problems.append(f"h2load negotiated {r.get('tls_protocol')!r}, not TLSv1.3")
        if kind == "full" and r.get("finished_s", 0) > duration * 1.1 + 1:
            problems.append(f"the offered {self.args.handshake_rate} connections/s were not kept up "
                            f"(took {r['finished_s']:.1f} s instead of {duration} s)")
        r["problems"] = problems
        for p in problems:
            self.notes.append(f"{r['server']} {KIND_LABEL[kind]}: {p}")
        log(f"  {r['server']:<26} {KIND_LABEL[kind]:<38} {r['requests']:>9} req  "
            f"{r['rps']:>9.0f}/s  {r['cpu_us_per_unit']:7.1f} µs CPU/unit  "
            f"{r['writes_per_unit']:.2f} writev/unit  p99 {fmt_ms(r.get('p99_ms'))}  "
            f"server {100 * r['server_busy']:.0f} % (+{100 * r['other_core0']:.0f} % other)  "
            f"client {100 * r['client_busy']:.0f} % (+{100 * r['other_core1']:.0f} % other)"
            + (f"  PROBLEMS: {'; '.join(problems)}" if problems else ""))
        self.results["phases"].append(r)
        return r

    def wait_quiet(self, what):
        """Wait (up to --quiet-timeout) until both cores are idle apart from us: other
        work on the machine inflates latency and skews CPU per unit (less batching)."""
        limit, deadline, t0 = self.args.quiet_below / 100, time.monotonic() + self.args.quiet_timeout, time.monotonic()
        while True:
            a = core_busy_ticks()
            time.sleep(1)
            b = core_busy_ticks()
            busy = max((b[c] - a[c]) * TICK_US / 1e6 for c in (SERVER_CORE, CLIENT_CORE))
            if busy <= limit:
                waited = time.monotonic() - t0
                if waited > 1.5:
                    log(f"  waited {waited:.0f} s for the machine to be quiet before {what}")
                return waited
            if time.monotonic() > deadline:
                log(f"  the machine is still busy ({100 * busy:.0f} % of a core) after "
                    f"{self.args.quiet_timeout} s; measuring {what} anyway")
                return time.monotonic() - t0

    def idle_cpu(self, server, seconds=5):
        """µs of CPU per second while idle, from the process's CPU-time clock (all its
        threads, nanosecond resolution: the tick counts in /proc/PID/stat are too coarse
        for a few milliseconds)."""
        clock = ((~server["proc"].pid) << 3) | 2  # Linux CPUCLOCK_SCHED of another process
        before = time.clock_gettime(clock)
        time.sleep(seconds)
        return (time.clock_gettime(clock) - before) * 1e6 / seconds

    def crypto_floor(self):
        out = run_quiet(["taskset", "-c", SERVER_CORE, "openssl", "speed", "-seconds", "3",
                         "ecdsap256", "ecdhx25519"], timeout=120)
        sign = re.search(r"ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out)
        x = re.search(r"ecdh \(X25519\)\s+\S+s\s+([\d.]+)", out)
        if not sign or not x:
            raise BenchError(f"could not parse openssl speed output:\n{out}")
        return {"ecdsa_p256_sign_us": 1e6 / float(sign.group(1)),
                "ecdsa_p256_verify_us": 1e6 / float(sign.group(2)),
                "x25519_op_us": 1e6 / float(x.group(1)),
                "openssl": run_quiet(["openssl", "version"]).strip(),
                "raw": out}

    # ------------------------------------------------------------ main

    def run(self):
        a = self.args
        os.makedirs(os.path.join(WORK_DIR, "nginx"), exist_ok=True)
        counts = [int(x) for x in a.domains.split(",")]
        if len(counts) != 2 or counts[0] < 1 or counts[1] < counts[0]:
            raise BenchError("--domains takes two increasing counts, e.g. 10000,100000")
        self.install_missing()
        self.build()
        self.results.update(date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                            machine=machine(), git=git_revision(ROOT, untracked=False),
                            loadavg_before=loadavg())

        index_html = make_index_html()
        www = os.path.join(WORK_DIR, "www")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "index.html"), "wb") as f:
            f.write(index_html)
        self.results["index_html_bytes"] = len(index_html)
        # The browser phases' page, and nginx's precompressed copy of it (`gzip -9`).
        page_html = make_page_html()
        with open(os.path.join(www, PAGE_PATH), "wb") as f:
            f.write(page_html)
        with open(os.path.join(www, PAGE_PATH + ".gz"), "wb") as f:
            f.write(gzip.compress(page_html, compresslevel=9, mtime=0))
        self.results["page_html_bytes"] = len(page_html)

        self.database()
        self.issue_certificate(index_html, page_html)
        self.nginx_certificate()
        chains = {}
        for name, path in (("landlord", self.landlord_chain), ("nginx", self.nginx_chain)):
            with open(path) as f:
                ders = pem_blocks(f.read())
            chains[name] = {"certificates": len(ders), "der_bytes": [len(d) for d in ders]}
        self.results["chains"] = chains

        self.wait_quiet("openssl speed")
        log("crypto floor: openssl speed -seconds 3 ecdsap256 ecdhx25519 (core 0)")
        floor = self.crypto_floor()
        self.results["crypto"] = floor
        log(f"  ECDSA P-256 sign {floor['ecdsa_p256_sign_us']:.1f} µs, X25519 {floor['x25519_op_us']:.1f} µs per op")

        self.fill_domains(counts[0])
        self.hosts_add()
        nginx = self.start_nginx(www)
        edge = self.start_edge(f"{counts[0]}")
        time.sleep(2)
        rss_start = rss_kib(edge["proc"].pid)
        for s in (nginx, edge):
            self.verify(s, index_html)
            self.verify_page(s, page_html)
        self.results["tls"] = {s["name"]: s["tls"] for s in (nginx, edge)}
        self.results["edge_threads"] = threads(edge["proc"].pid)
        rss_warm = rss_kib(edge["proc"].pid)
        self.results["nginx_rss_kib_start"] = rss_kib(nginx["proc"].pid)
        self.results["idle_cpu_us_per_s"] = {s["name"]: self.idle_cpu(s) for s in (nginx, edge)}

        if a.only:
            return self.explore(nginx, edge, f"landlord ({counts[0]:,} domains)")
        kinds = list(KIND_LABEL)
        if a.warmup > 0:
            log(f"warm-up: {a.warmup} s of each load against each server (not recorded)")
            for s in (nginx, edge):
                for k in kinds:
                    self.phase(s, k, a.warmup, record=False)
        rss_after_warmup = rss_kib(edge["proc"].pid)
        label10 = f"landlord ({counts[0]:,} domains)"
        log(f"measuring, {a.duration} s per phase, {a.rounds} round(s)")
        for rnd in range(a.rounds):
            for i, k in enumerate(kinds):
                order = (nginx, edge) if (i + rnd) % 2 == 0 else (edge, nginx)
                for s in order:
                    r = self.phase(s, k, a.duration, label=label10 if s is edge else "nginx")
                    r["round"] = rnd + 1
        self.results["nginx_rss_kib_end"] = rss_kib(nginx["proc"].pid)
        self.finish_edge(edge, counts[0], rss_start, rss_warm, rss_after_warmup)

        self.fill_domains(counts[1])
        edge = self.start_edge(f"{counts[1]}")
        time.sleep(2)
        rss_start = rss_kib(edge["proc"].pid)
        self.verify(edge, index_html)
        rss_warm = rss_kib(edge["proc"].pid)
        if a.warmup > 0:
            for k in kinds:
                self.phase(edge, k, a.warmup, record=False)
        rss_after_warmup = rss_kib(edge["proc"].pid)
        label100 = f"landlord ({counts[1]:,} domains)"
        for rnd in range(a.rounds):
            for k in kinds:
                r = self.phase(edge, k, a.duration, label=label100)
                r["round"] = rnd + 1
        self.finish_edge(edge, counts[1], rss_start, rss_warm, rss_after_warmup)
        self.stop(nginx["proc"])
        self.results["loadavg_after"] = loadavg()
        self.results["labels"] = {"nginx": "nginx", "small": label10, "large": label100}
        self.results["versions"] = {
            "nginx": f"nginx-light {pkg_version('nginx-light', unknown='?')}",
            "wrk": f"wrk {pkg_version('wrk', unknown='?')}",
            "h2load": f"nghttp2-client {pkg_version('nghttp2-client', unknown='?')}",
        }
        self.results["notes"] = self.notes
        self.results["args"] = vars(self.args)
        self.write()

    def explore(self, nginx, edge, label):
        """--only KIND: one load, both servers, a few rounds; numbers on the terminal only."""
        a, kind = self.args, self.args.only
        if a.perf and not shutil.which("perf"):
            raise BenchError("--perf needs perf (Debian package linux-perf)")
        log("idle CPU: " + ", ".join(f"{k} {v:.0f} µs/s" for k, v in self.results["idle_cpu_us_per_s"].items()))
        for s in (nginx, edge):
            self.phase(s, kind, max(a.warmup, 1), record=False)
        cpu = {"nginx": [], label: []}
        for rnd in range(a.rounds):
            for s in ((nginx, edge) if rnd % 2 == 0 else (edge, nginx)):
                perf = None
                if a.perf and s is edge and rnd == a.rounds - 1:
                    perf = subprocess.Popen(["perf", "record", "-g", "-F", "2000", "-o", a.perf,
                                             "-p", str(edge["proc"].pid)],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(0.5)
                r = self.phase(s, kind, a.duration, label=label if s is edge else "nginx")
                if perf:
                    perf.send_signal(signal.SIGINT)
                    perf.wait(timeout=60)
                cpu[r["server"]].append(r["cpu_us_per_unit"])
        for name, xs in cpu.items():
            log(f"{name:<26} {KIND_LABEL[kind]}: median {median(xs):.2f} µs CPU/unit "
                f"({', '.join(f'{x:.2f}' for x in xs)})")
        log(f"ratio landlord/nginx: {median(cpu[label]) / median(cpu['nginx']):.2f}")
        self.scan_log(edge)
        for n in self.notes:
            log(f"note: {n}")

    def finish_edge(self, edge, domains, rss_start, rss_warm, rss_after_warmup):
        """Record the edge's memory for this domain count, stop it and read its log."""
        self.results["rss"].append({
            "domains": domains, "startup_s": edge["startup_s"], "after_start": rss_start,
            "after_first_requests": rss_warm, "after_warmup": rss_after_warmup,
            "after_bench": rss_kib(edge["proc"].pid), "threads": threads(edge["proc"].pid)})
        if self.stop(edge["proc"]) != 0:
            self.notes.append(f"landlord edge ({domains}) exited {edge['proc'].returncode} on SIGTERM")
        self.scan_log(edge)

    def scan_log(self, edge):
        for line in log_warnings(edge["log"])[:5]:
            self.notes.append(f"edge log: {line[:300]}")

    def write(self):
        os.makedirs(BENCH_DIR, exist_ok=True)
        raw_path = os.path.join(BENCH_DIR, f"edge-{self.run_id}.json")
        with open(raw_path, "w") as f:
            json.dump(self.results, f, indent=2, default=str)
        md = render(self.results, self.args)
        with open(RESULTS_MD, "w") as f:
            f.write(md)
        print(md)
        log(f"wrote {RESULTS_MD} and {raw_path}")


# ---------------------------------------------------------------- parsing

def rate_period(rate):
    """(connections per period, period in whole ms) for h2load's -r/--rate-period: the
    shortest period that gives exactly `rate` connections per second."""
    for per in range(1, 1001):
        period = 1000 * per / rate
        if period >= 1 and period == int(period):
            return per, int(period)
    raise BenchError(f"--handshake-rate {rate}: choose a divisor of 1000 × n (e.g. 1000, 1500, 2000)")


KIND_LABEL = {
    "full": "new connection, full TLS 1.3 handshake",
    "resumed": "new connection, resumed TLS 1.3 session",
    "keepalive": "keep-alive request",
    "h2": "HTTP/2 request",
    "browser": "keep-alive, 20 KB page, browser A-E",
    "browser-h2": "HTTP/2, 20 KB page, browser A-E",
}

# What every browser sends: the browser phases ask for PAGE_PATH with it, so the edge
# serves its stored Brotli body and nginx its `gzip_static` file (it has no Brotli).
BROWSER_ACCEPT_ENCODING = "gzip, deflate, br, zstd"
PAGE_PATH = "page.html"

UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(value, unit):
    return float(value) * UNITS_MS[unit]


def parse_wrk(out):
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    if not m:
        raise BenchError(f"could not parse wrk output:\n{out}")
    r = {"requests": int(m.group(1))}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(rps.group(1)) if rps else float("nan")
    for p in ("50", "75", "90", "99"):
        pm = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        r[f"p{p}_ms"] = to_ms(*pm.groups()) if pm else None
    err = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["errors"] = sum(int(x) for x in err.groups()) if err else 0
    if err:
        r["error_detail"] = err.group(0)
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non_2xx"] = int(non.group(1)) if non else 0
    return r


def parse_h2load(out):
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    if not m:
        raise BenchError(f"could not parse h2load output:\n{out}")
    total, started, done, ok, failed, errored, timeout = map(int, m.groups())
    r = {"requests": ok, "errors": errored + timeout, "non_2xx": failed}
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    r["rps"] = float(rps.group(1)) if rps else float("nan")
    t = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", out)
    if t:
        r["min_ms"], r["max_ms"], r["mean_ms"] = (to_ms(t.group(i), t.group(i + 1)) for i in (1, 3, 5))
    proto = re.search(r"Application protocol: (\S+)", out)
    r["protocol"] = proto.group(1) if proto else None
    tls = re.search(r"TLS Protocol: (\S+)", out)
    r["tls_protocol"] = tls.group(1) if tls else None
    fin = re.search(r"finished in ([\d.]+)(ms|s),", out)
    r["finished_s"] = float(fin.group(1)) / (1000 if fin and fin.group(2) == "ms" else 1) if fin else 0
    ttfb = re.search(r"time to 1st byte:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", out)
    if ttfb:
        r["ttfb_min_ms"], r["ttfb_max_ms"], r["ttfb_mean_ms"] = (to_ms(ttfb.group(i), ttfb.group(i + 1))
                                                                 for i in (1, 3, 5))
    return r


def make_page_html():
    """About 20 KB of HTML, as a status page or landing page is: what the browser phases
    fetch."""
    rows = []
    i = 0
    while sum(len(r) for r in rows) < 19_000:
        rows.append(f'<tr><td class="name">Component {i}</td><td class="state ok">operational</td>'
                    f'<td class="uptime">99.{(i * 37) % 100:02d} %</td></tr>\n')
        i += 1
    html = (f"<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{HOST} status</title>\n</head>\n<body>\n<h1>{HOST}</h1>\n<table>\n"
            + "".join(rows) + "</table>\n</body>\n</html>\n")
    return html.encode()


def make_index_html():
    """About 1 KB of ordinary HTML, identical for both servers."""
    para = ("Landlord serves this page over HTTPS with the certificate chosen by SNI. "
            "It is the benchmark page: ordinary markup, about one kilobyte, no scripts. ")
    body = "\n".join(f"<p>{para}</p>" for _ in range(6))
    html = (f"<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{HOST}</title>\n</head>\n<body>\n<h1>{HOST}</h1>\n{body}\n</body>\n</html>\n")
    return html.encode()


# ---------------------------------------------------------------- report

def fmt_ms(v):
    if v is None or v != v:
        return "—"
    return f"{v * 1000:.0f} µs" if v < 1 else f"{v:.2f} ms"


def fmt(v, digits=1):
    return "—" if v is None or v != v else f"{v:,.{digits}f}"


def median(xs):
    xs = sorted(x for x in xs if x is not None and x == x)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def render(res, args):
    crypto = res["crypto"]
    sign, x = crypto["ecdsa_p256_sign_us"], crypto["x25519_op_us"]
    floor = sign + 2 * x  # full handshake: CertificateVerify signature + ephemeral X25519
    floor_resumed = 2 * x  # psk_dhe_ke resumption: no signature, still X25519
    labels = res["labels"]
    servers = [labels["nginx"], labels["small"], labels["large"]]

    def agg(server, kind, key):
        """Median over the rounds, leaving out disturbed ones unless every round was."""
        rounds = [p for p in res["phases"] if p["server"] == server and p["kind"] == kind]
        quiet = [p for p in rounds if not p.get("disturbed")]
        return median(p[key] for p in (quiet or rounds))

    cpu = {(s, k): agg(s, k, "cpu_us_per_unit") for s in servers for k in KIND_LABEL}

    def ratio(s, k):
        n, v = cpu[("nginx", k)], cpu[(s, k)]
        return "1.00×" if s == "nginx" else ("—" if not n or v is None else f"{v / n:.2f}×")

    cmd = (args.command_label or "").strip() or "python3 scripts/bench-edge.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    tls = res["tls"]
    ch = res["chains"]
    lines = [
        "## Edge (just bench)",
        "",
        f"Command: `{cmd}`",
        "",
        f"- Date: {res['date']}",
        f"- Machine: {res['machine']}",
        f"- landlord: `target/release/landlord edge` at {res['git']}, `RUST_LOG=warn`, `LANDLORD_HSTS=off`, "
        f"pinned with `taskset -c 0` (its Tokio runtime then starts one worker thread; {res['edge_threads']} threads in "
        f"all), PostgreSQL {res['postgres'].split()[0]} on the same machine (idle during the load)",
        f"- nginx: {res['versions']['nginx']} (nginx {res['nginx_version']}), one process (`master_process off`, "
        f"`worker_processes 1`), pinned with `taskset -c 0`; `ssl_session_cache off`, `ssl_session_tickets "
        f"{args.nginx_tickets}` (on, like the edge, which always issues and accepts tickets: the resumed-session phase "
        f"needs both to), `keepalive_requests 1000000` (hyper has no such limit), `access_log off`, `gzip_static on` (it serves the browser phases' `page.html.gz`; no gzip per request), otherwise defaults (no `open_file_cache`); the config is "
        f"written to `target/bench/edge/nginx/nginx.conf`",
        f"- Load: {res['versions']['wrk']} and {res['versions']['h2load']}, pinned with `taskset -c 1`, "
        f"{args.connections} connections, {args.duration} s per phase, {args.rounds} round(s) (the summary shows the "
        f"median of the rounds not marked †, of all rounds if every one is), after {args.warmup} s of unrecorded warm-up per load and server; nginx and landlord phases "
        f"alternate",
        f"- Page: the same {res['index_html_bytes']}-byte `index.html` from both (landlord: uploaded with "
        f"`PUT /v1/files/index.html`; nginx: the same bytes on disk); checked byte for byte over HTTP/1.1 and HTTP/2 "
        f"with `curl --cacert` before measuring",
        f"- TLS as negotiated (openssl s_client): landlord {tls['landlord']['protocol']} {tls['landlord']['cipher']}, "
        f"{tls['landlord']['group']}, {tls['landlord']['signature']}, {tls['landlord']['tickets']} session tickets sent; "
        f"nginx {tls['nginx']['protocol']} {tls['nginx']['cipher']}, {tls['nginx']['group']}, "
        f"{tls['nginx']['signature']}, {tls['nginx']['tickets']} session tickets sent; a second `s_client` offering "
        f"the first one's ticket was resumed by landlord: {'yes' if tls['landlord']['resumes'] else 'no'}, by nginx: "
        f"{'yes' if tls['nginx']['resumes'] else 'no'}",
        f"- Certificates: different but equivalent. landlord serves the chain it issued itself "
        f"(`LANDLORD_ISSUER=local`: ECDSA P-256 leaf signed by its P-256 local CA, key sealed in PostgreSQL, "
        f"{ch['landlord']['certificates']} certificates, DER {' + '.join(map(str, ch['landlord']['der_bytes']))} bytes); "
        f"nginx serves an openssl-made chain of the same shape ({ch['nginx']['certificates']} certificates, P-256, "
        f"ecdsa-with-SHA256, DER {' + '.join(map(str, ch['nginx']['der_bytes']))} bytes), because the edge's key "
        f"cannot leave the database unsealed",
        f"- Crypto floor (`taskset -c 0 openssl speed -seconds 3 ecdsap256 ecdhx25519`, {crypto['openssl']}; "
        f"operations per second of user CPU time): "
        f"ECDSA P-256 sign {sign:.1f} µs, X25519 {x:.1f} µs per op; a TLS 1.3 full handshake costs the server at least "
        f"one sign and two X25519 operations (key generation, shared secret) = **{floor:.1f} µs**",
        f"- Server CPU = utime + stime of the server process (every thread) from `/proc/PID/stat`, read before and "
        f"after each phase (clock ticks of {TICK_US:.0f} µs), divided by the requests the client completed. Idle "
        f"background: nginx {res['idle_cpu_us_per_s']['nginx']:.0f} µs/s, landlord "
        f"{res['idle_cpu_us_per_s']['landlord']:.0f} µs/s (the change-log poll)",
        f"- Load average (1/5/15 min) before {res['loadavg_before']}, after {res['loadavg_after']}",
        "",
        "### Server CPU per unit of work (lower is better)",
        "",
        "| Server | New connection, full TLS 1.3 handshake + 1 request | vs nginx | vs crypto floor "
        f"({floor:.1f} µs) | New connection, resumed TLS 1.3 + 1 request | vs nginx | vs crypto floor "
        f"({floor_resumed:.1f} µs) | Keep-alive HTTP/1.1 request | vs nginx | HTTP/2 request | vs nginx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def vs_floor(v, f):
        return "—" if v is None else f"{v / f:.2f}×"

    for s in servers:
        lines.append(
            f"| {s} | {fmt(cpu[(s, 'full')])} | {ratio(s, 'full')} | {vs_floor(cpu[(s, 'full')], floor)} | "
            f"{fmt(cpu[(s, 'resumed')])} | {ratio(s, 'resumed')} | {vs_floor(cpu[(s, 'resumed')], floor_resumed)} | "
            f"{fmt(cpu[(s, 'keepalive')])} | {ratio(s, 'keepalive')} | {fmt(cpu[(s, 'h2')])} | {ratio(s, 'h2')} |")
    lines += [
        "",
        "Server CPU µs per unit of work: per connection in the first two columns, per request in the others. Crypto "
        f"floor: a full handshake costs the server at least one ECDSA P-256 signature and two X25519 operations "
        f"(ephemeral key, shared secret); a resumed one (psk_dhe_ke) only the two X25519 operations.",
        "",
        "### Browser-like requests (lower is better)",
        "",
        f"The {res.get('page_html_bytes', 0):,}-byte `{PAGE_PATH}` asked for with `Accept-Encoding: "
        f"{BROWSER_ACCEPT_ENCODING}`, as every browser sends it: landlord serves the Brotli body its worker stored "
        "once after the upload; nginx serves `page.html.gz` (`gzip -9`, `gzip_static on`; nginx has no Brotli "
        "without a third-party module). Neither compresses per request. On the wire: "
        + ", ".join(f"{name} {w['bytes']:,} bytes of {w['encoding']}"
                    for name, w in sorted(res.get("page_wire", {}).items())) + ".",
        "",
        "| Server | Keep-alive HTTP/1.1 request | vs nginx | HTTP/2 request | vs nginx |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in servers:
        lines.append(f"| {s} | {fmt(cpu[(s, 'browser')])} | {ratio(s, 'browser')} | "
                     f"{fmt(cpu[(s, 'browser-h2')])} | {ratio(s, 'browser-h2')} |")
    lines += [
        "",
        "### Each phase",
        "",
        "| Server | Load | Requests | Throughput (req/s) | p50 | p99 | Server CPU busy (+ other work on core 0) | "
        "Client CPU busy (+ other work on core 1) | Server CPU µs per unit | Server write(v) calls per unit | Errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    def rnd(p):
        return f" (round {p['round']})" if args.rounds > 1 else ""

    for k in KIND_LABEL:
        for s in servers:
            for p in (q for q in res["phases"] if q["server"] == s and q["kind"] == k):
                if k in ("h2", "browser-h2"):
                    p50 = f"mean {fmt_ms(p.get('mean_ms'))}"
                    p99 = f"max {fmt_ms(p.get('max_ms'))}"
                elif k == "full":
                    p50 = f"mean {fmt_ms(p.get('ttfb_mean_ms'))}"
                    p99 = f"max {fmt_ms(p.get('ttfb_max_ms'))}"
                else:
                    p50, p99 = fmt_ms(p.get("p50_ms")), fmt_ms(p.get("p99_ms"))
                errs = "; ".join(p["problems"]) or "none"
                lines.append(
                    f"| {s} | {KIND_LABEL[k]}{rnd(p)}{' †' if p.get('disturbed') else ''} "
                    f"| {p['requests']:,} | {fmt(p['rps'], 0)} | {p50} | {p99} | "
                    f"{100 * p['server_busy']:.0f} % (+{100 * p['other_core0']:.0f} %) | "
                    f"{100 * p['client_busy']:.0f} % (+{100 * p['other_core1']:.0f} %) | "
                    f"{fmt(p['cpu_us_per_unit'])} | {fmt(p.get('writes_per_unit'), 2)} | {errs} |")
    lines += [
        "",
        "Commands (URL `https://bench.example.com:PORT/`, the name in /etc/hosts for the run): full handshakes "
        f"`h2load --h1 -t 1 -n N -c N -r {rate_period(args.handshake_rate)[0]} --rate-period "
        f"{rate_period(args.handshake_rate)[1]}ms -N 10s URL` (a new h2load client, "
        f"hence a new TLS session, for each of N = {args.handshake_rate} × {args.duration} connections, "
        f"{args.handshake_rate} per second for both servers; latency is h2load's time to first byte, connect and "
        "handshake included, mean and max); resumed sessions "
        f"`wrk -t1 -c{args.connections} -d{args.duration}s --latency -H 'Connection: close' URL` (wrk keeps each "
        "connection's TLS session across reconnects, so every connection after the first resumes with a session "
        "ticket); keep-alive "
        f"`wrk -t1 -c{args.connections} -d{args.duration}s --latency URL`; HTTP/2 "
        f"`h2load -t 1 -c {args.connections} -m 10 -D {args.duration} URL` (h2load reports no percentiles: mean and "
        "max latency instead). Before each phase the script waits (up to "
        f"{args.quiet_timeout} s) until both cores are below {args.quiet_below:g} % busy; † marks a phase during which "
        f"other work on the machine (not the server, not the client) still took more than {args.quiet_below:g} % of "
        "a core: its throughput and latency are not comparable, and its CPU per unit is less reliable (a server that "
        "is preempted batches differently).",
        "",
        "### Edge memory (VmRSS) by registered domains",
        "",
        "| Domains in the database | Start → listening | After start | After the first requests (1 certificate + index.html cached) | "
        "After warm-up | After the measured load |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rss"]:
        lines.append(
            f"| {r['domains']:,} | {r['startup_s']:.2f} s | {r['after_start'] / 1024:.1f} MiB | "
            f"{r['after_first_requests'] / 1024:.1f} MiB | {r['after_warmup'] / 1024:.1f} MiB | "
            f"{r['after_bench'] / 1024:.1f} MiB |")
    lines += [
        "",
        f"nginx for comparison (one name): {res['nginx_rss_kib_start'] / 1024:.1f} MiB after start, "
        f"{res['nginx_rss_kib_end'] / 1024:.1f} MiB after its load. Every registered hostname is in the edge's "
        "allowlist in memory (that is what grows with the domain count); only `bench.example.com` was requested, so "
        "one certificate is cached.",
        "",
    ]
    disturbed = [p for p in res["phases"] if p.get("disturbed")]
    if res["notes"]:
        lines += ["Anomalies:", ""] + [f"- {n}" for n in res["notes"]] + [""]
    else:
        lines += ["No anomalies: no socket errors or non-2xx responses in any phase, h2load negotiated h2, and the "
                  "edge logged no WARN/ERROR line and exited 0 on SIGTERM.", ""]
    lines += [
        f"Other work on the machine: {len(disturbed)} of {len(res['phases'])} measured phases are marked †.",
        "",
        "### Interpretation",
        "",
    ]
    lines += interpret(res, cpu, floor, floor_resumed, servers)
    return "\n".join(lines)


def interpret(res, cpu, floor, floor_resumed, servers):
    """The numbers in words (what was measured; the why is for a person to add)."""
    nginx, small, large = servers
    out = []

    def cmp(v, n):
        if v is None or not n:
            return "—"
        r = v / n
        if abs(r - 1) < 0.05:
            return f"about the same as nginx ({r:.2f}×)"
        return f"{(1 - r) * 100:.0f} % less than nginx" if r < 1 else f"{(r - 1) * 100:.0f} % more than nginx"

    nc, nn = cpu[(small, "full")], cpu[(nginx, "full")]
    if nc and nn:
        out.append(
            f"- New connection with a full TLS 1.3 handshake and one request: landlord {fmt(nc)} µs of server CPU, "
            f"{cmp(nc, nn)} ({fmt(nn)} µs). The asymmetric crypto alone (one ECDSA P-256 signature, two X25519 "
            f"operations, as OpenSSL measures them) is {floor:.1f} µs: landlord spends {nc / floor:.1f}× that, nginx "
            f"{nn / floor:.1f}×; the rest is the TCP accept and teardown, the key schedule, record encryption, session "
            "tickets, HTTP and the page.")
    rc, rn = cpu[(small, "resumed")], cpu[(nginx, "resumed")]
    if rc and rn:
        out.append(
            f"- New connection resuming a TLS 1.3 session (what a returning browser does): landlord {fmt(rc)} µs, "
            f"{cmp(rc, rn)} ({fmt(rn)} µs); floor {floor_resumed:.1f} µs (two X25519 operations, no signature).")
    for kind, what in (("keepalive", "Keep-alive HTTP/1.1 request"), ("h2", "HTTP/2 request")):
        v, n = cpu[(small, kind)], cpu[(nginx, kind)]
        out.append(f"- {what}: landlord {fmt(v)} µs, {cmp(v, n)} ({fmt(n)} µs).")
    big = [cpu[(large, k)] for k in KIND_LABEL]
    if all(b is not None for b in big):
        out.append(
            f"- With {res['rss'][1]['domains']:,} instead of {res['rss'][0]['domains']:,} domains registered the edge "
            f"spent {' / '.join(fmt(b) for b in big)} µs (full handshake / resumed / keep-alive / HTTP/2): the "
            "allowlist is a hash map, so its size should not matter; differences of a few percent are within the "
            "run-to-run spread.")
    r0, r1 = res["rss"][0], res["rss"][1]
    per_name = (r1["after_start"] - r0["after_start"]) * 1024 / (r1["domains"] - r0["domains"])

    def measured_connections(label):
        return sum(p["requests"] for p in res["phases"] if p["server"] == label and p["kind"] in ("full", "resumed"))

    growth = [(r["after_bench"] - r["after_warmup"]) * 1024 / max(1, measured_connections(lbl))
              for r, lbl in ((r0, small), (r1, large))]
    out.append(
        f"- Memory: {r0['after_start'] / 1024:.1f} MiB after start with {r0['domains']:,} domains, "
        f"{r1['after_start'] / 1024:.1f} MiB with {r1['domains']:,}: about {per_name:.0f} bytes per registered "
        f"hostname (name, tenant id, hash-map slot, allocator slack). The first requests (certificate and page "
        f"cached, first TLS and HTTP buffers) and the warm-up add {(r0['after_warmup'] - r0['after_start']) / 1024:.1f} "
        f"MiB; during the measured phases RSS kept growing, by "
        f"{(r0['after_bench'] - r0['after_warmup']) / 1024:.1f} and {(r1['after_bench'] - r1['after_warmup']) / 1024:.1f} "
        f"MiB, i.e. {growth[0]:.0f} and {growth[1]:.0f} bytes per new connection served.")
    out.append(
        "- Throughput and latency are shown for completeness: with the load generator on the other of two cores, "
        "requests/s is bounded by whichever side runs out of CPU first (the busy columns say which), so it is not "
        "a capacity figure for either server.")
    out.append("")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured phase (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="unrecorded seconds per load before measuring (default 2)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="measured rounds of all phases; the summary shows the median (default 3)")
    ap.add_argument("--connections", type=int, default=16, help="client connections (default 16)")
    ap.add_argument("--domains", default="10000,100000", help="registered domains for the two RSS runs")
    ap.add_argument("--handshake-rate", type=int, default=1500,
                    help="new connections per second offered to each server in the full-handshake phase "
                         "(fixed rate, the same for both, below what the client core can do; default 1500)")
    ap.add_argument("--nginx-tickets", choices=["on", "off"], default="on",
                    help="nginx ssl_session_tickets (default on: the edge always issues TLS 1.3 tickets, and wrk "
                         "resumes with them, so the resumed-connection phase needs both to accept tickets)")
    ap.add_argument("--quiet-below", type=float, default=10,
                    help="percent of a core: wait for the machine to be this quiet before each phase; a phase "
                         "with more other work than this is marked disturbed (default 10)")
    ap.add_argument("--quiet-timeout", type=int, default=60,
                    help="seconds to wait for quiet before a phase (default 60)")
    ap.add_argument("--no-build", action="store_true", help="use target/release/landlord as it is")
    ap.add_argument("--command-label", help="the command shown in the results")
    ap.add_argument("--only", choices=list(KIND_LABEL),
                    help="exploration: measure only this load, edge and nginx alternating for --rounds, with the "
                         "first --domains count; prints the CPU per unit and writes no results")
    ap.add_argument("--perf", metavar="FILE",
                    help="with --only: record the edge's last measured phase with `perf record -g` into FILE")
    ap.add_argument("--render", metavar="JSON",
                    help="only write target/bench/edge-results.md again from a run's raw edge-<runid>.json")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            res = json.load(f)
        saved = argparse.Namespace(**res.get("args", vars(args)))
        saved.command_label = saved.command_label or args.command_label
        md = render(res, saved)
        with open(RESULTS_MD, "w") as f:
            f.write(md)
        print(md)
        return
    if os.geteuid() != 0:
        raise SystemExit("bench-edge: run as root: it edits /etc/hosts for the run (restored at exit)")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("bench-edge: needs 2 CPUs (server on core 0, load generator on core 1)")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    bench = Bench(args)
    try:
        bench.run()
    except (BenchError, Interrupted) as e:
        log(f"failed: {e}")
        code = 1
    else:
        code = 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        bench.cleanup()
    sys.exit(code)


if __name__ == "__main__":
    main()
