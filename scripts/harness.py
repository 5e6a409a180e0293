"""Helpers shared by the scripts that drive real `landlord` processes (bench-edge.py,
bench-issuance.py, soak.py, attack.py): logging, processes and their logs, /proc readings,
statistics, PostgreSQL, pebble-challtestsrv and the REST API, with the Python standard
library only."""

import datetime as dt
import json
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

SCRIPTS = os.path.dirname(os.path.abspath(__file__))


class HarnessError(Exception):
    """A step failed; the message says which and why."""


def logger(name, stamp=False):
    """A log(msg) function that writes `name: msg` to stderr, flushed; with stamp,
    `name HH:MM:SS: msg` (UTC)."""
    def log(msg):
        prefix = f"{name} {dt.datetime.now(dt.timezone.utc).strftime('%H:%M:%S')}" if stamp else name
        print(f"{prefix}: {msg}", file=sys.stderr, flush=True)
    return log


# ---------------------------------------------------------------- processes

def run_quiet(cmd, env=None, input=None, timeout=600, cwd=None):
    """stdout of cmd; raises HarnessError with stderr on failure."""
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, input=input, timeout=timeout,
                       cwd=cwd)
    if p.returncode != 0:
        raise HarnessError(f"{shlex.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p.stdout


def spawn(cmd, logfile=None, env=None, cwd=None, append=False):
    """Popen of cmd, stdin from /dev/null, stdout and stderr into logfile (truncated first,
    or appended to with append); both discarded without a logfile."""
    out = open(logfile, "ab" if append else "wb") if logfile else subprocess.DEVNULL
    try:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT if logfile else subprocess.DEVNULL)
    finally:
        if logfile:
            out.close()


def terminate(proc, timeout, on_kill=None):
    """SIGTERM proc if it still runs and wait up to timeout s for it to exit; if it does not,
    call on_kill() (if given), SIGKILL and reap it. True if it exited by itself."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        if on_kill:
            on_kill()
        proc.kill()
        proc.wait()
        return False


def cargo_build(root):
    """`cargo build --release -p landlord` in root, its output on the terminal; HarnessError
    if it fails."""
    p = subprocess.run(["cargo", "build", "--release", "-p", "landlord"], cwd=root)
    if p.returncode != 0:
        raise HarnessError("cargo build --release -p landlord failed")


def tail(path, lines=30):
    """The last `lines` lines of a log file as one string; "(no log)" if it cannot be read."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


def log_warnings(path):
    """The WARN, ERROR and `panicked` lines of a landlord log file, line ends stripped."""
    with open(path, errors="replace") as f:
        return [line.rstrip() for line in f if re.search(r"\b(WARN|ERROR)\b|panicked", line)]


# ---------------------------------------------------------------- ports

def free_port(udp_too=False):
    """A TCP port on 127.0.0.1 that is free right now (and the same UDP port, with udp_too)."""
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        if udp_too:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            u.close()
        s.close()
        return port
    raise HarnessError("no free port")


def wait_port(port, proc, what, timeout=30):
    """Wait until 127.0.0.1:port accepts connections; HarnessError if proc exits first or
    timeout s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise HarnessError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


# ---------------------------------------------------------------- HTTP, challtestsrv, the REST API

def http(method, url, body=None, token=None, content_type=None, timeout=10):
    """(status, the body parsed as JSON, or as text if it is not JSON, or None if empty).
    HTTP errors are returned, not raised."""
    headers = {}
    data = None
    if body is not None:
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        else:
            data = json.dumps(body).encode()
            content_type = content_type or "application/json"
    if content_type:
        headers["Content-Type"] = content_type
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            raw, status = res.read(), res.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, (json.loads(raw) if raw else None)
    except ValueError:
        return status, raw.decode(errors="replace")


def challtestsrv(mgmt, path, body):
    """POST body to pebble-challtestsrv's management API at mgmt (path e.g. /set-txt,
    /add-a, /set-cname); HarnessError unless it answers 200."""
    status, res = http("POST", mgmt + path, body)
    if status != 200:
        raise HarnessError(f"challtestsrv {path} {body}: HTTP {status} {res}")


def register_domain(api, key, hostname, mgmt):
    """POST /v1/domains for hostname with the tenant API key, publish the ownership TXT
    record it asks for on pebble-challtestsrv at mgmt (the name itself is pointed by
    challtestsrv's default A answer), then ask for a check now. The domain as created."""
    status, body = http("POST", f"{api}/v1/domains", {"hostname": hostname}, token=key)
    if status != 201:
        raise HarnessError(f"POST /v1/domains {hostname}: HTTP {status} {body}")
    own = body["ownership"]
    challtestsrv(mgmt, "/set-txt", {"host": own["name"] + ".", "value": own["value"]})
    http("POST", f"{api}/v1/domains/{body['id']}/check", token=key)
    return body


# ---------------------------------------------------------------- BENCHMARKS.md

def write_section(root, title, section, log):
    """Put `section` (which starts with the heading `title`) into root/BENCHMARKS.md: in
    place of the section with that heading, or at the end; other sections are kept."""
    path = os.path.join(root, "BENCHMARKS.md")
    intro = ("# Benchmarks\n\nMeasured numbers for Landlord, each section with the exact command "
             "that produced it, the machine and the date. Re-run the command to refresh a section.\n")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = intro
    start = text.find(title)
    if start >= 0:
        nxt = text.find("\n## ", start + len(title))
        end = len(text) if nxt < 0 else nxt + 1
        text = text[:start] + section + ("\n" if nxt >= 0 else "") + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(text)
    log(f"wrote {os.path.relpath(path, root)}")


# ---------------------------------------------------------------- PostgreSQL

def postgres_server(timeout=600):
    """The server URL scripts/test-postgres.sh names (it starts a PostgreSQL if none runs)."""
    return run_quiet([os.path.join(SCRIPTS, "test-postgres.sh")], timeout=timeout).strip()


def create_database(server, name, drop_first=False):
    """Create database `name` on the server at URL `server` (dropping a left-over one of
    that name first, with drop_first); the new database's URL."""
    cmd = ["psql", server, "-qAt", "-v", "ON_ERROR_STOP=1"]
    if drop_first:
        cmd += ["-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)']
    run_quiet(cmd + ["-c", f'CREATE DATABASE "{name}"'])
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(server)._replace(path="/" + name))


def drop_database(server, name, log=None):
    """DROP DATABASE IF EXISTS `name` WITH (FORCE) on the server at URL `server`, best effort:
    True if it worked. With log, says either way (a failure with psql's error)."""
    try:
        run_quiet(["psql", server, "-qAtc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'])
    except (HarnessError, OSError, subprocess.TimeoutExpired) as e:
        if log:
            log(f"could not drop database {name}: {e}")
        return False
    if log:
        log(f"dropped database {name}")
    return True


def psql(url, sql):
    """psql's unaligned, tuples-only output of sql against the database at url, stripped."""
    return run_quiet(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql]).strip()


# ---------------------------------------------------------------- statistics

def pct(values, p, interpolate=True):
    """Percentile p (0-100) of values, NaN when there are none. interpolate: linear
    interpolation between the closest ranks; otherwise the sorted value at index
    floor(p / 100 × n) (clamped to the last)."""
    v = sorted(values)
    if not v:
        return float("nan")
    if not interpolate:
        return v[min(len(v) - 1, int(p / 100 * len(v)))]
    if len(v) == 1:
        return v[0]
    k = (len(v) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summary(values):
    """n, p50, p95 (interpolated), max, min and mean of values (NaN where there are none)."""
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "max": max(values) if values else float("nan"),
        "min": min(values) if values else float("nan"),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


# ---------------------------------------------------------------- the machine and its processes

def proc_cpu_ticks(pid):
    """utime + stime of a process (all its threads, live and exited) in clock ticks, from
    /proc/PID/stat; OSError if it is gone."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15
    return int(fields[11]) + int(fields[12])


def proc_cpu(pid):
    """CPU seconds (user + system) a process has used so far, or None."""
    try:
        return proc_cpu_ticks(pid) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def loadavg():
    """The 1, 5 and 15 minute load averages as "a b c"; "unknown" without /proc/loadavg."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def pkg_version(name, unknown="unknown"):
    """The installed version of Debian package `name`; `unknown` if dpkg does not say."""
    try:
        return run_quiet(["dpkg-query", "-W", "-f=${Version}", name]).strip() or unknown
    except (HarnessError, OSError):
        return unknown


def git_revision(root, paths=(), untracked=True):
    """HEAD's short hash in the checkout at root, + " + uncommitted changes" if `git status`
    shows any (only under paths, when given; not untracked files, with untracked=False);
    "unknown" if git does not answer."""
    status = ["git", "-C", root, "status", "--porcelain"]
    if not untracked:
        status.append("--untracked-files=no")
    if paths:
        status += ["--", *paths]
    try:
        rev = run_quiet(["git", "-C", root, "rev-parse", "--short", "HEAD"]).strip()
        dirty = run_quiet(status).strip()
        return rev + (" + uncommitted changes" if dirty else "")
    except (HarnessError, OSError):
        return "unknown"


def machine_facts():
    """What a benchmark reports about the machine: CPU model, memory, distribution
    ("unknown"/"" where /proc or /etc/os-release does not say)."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    distro = None
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {"model": model, "mem": mem, "distro": distro}
