"""Helpers shared by the scripts that drive real `landlord` processes (bench-edge.py,
soak.py): ports, processes and the REST API, with the Python standard library only."""

import json
import platform
import shlex
import socket
import subprocess
import time
import urllib.error
import urllib.request


class HarnessError(Exception):
    """A step failed; the message says which and why."""


def run_quiet(cmd, env=None, input=None, timeout=600):
    """stdout of cmd; raises HarnessError with stderr on failure."""
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, input=input, timeout=timeout)
    if p.returncode != 0:
        raise HarnessError(f"{shlex.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p.stdout


def free_port(udp_too=False):
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


def http(method, url, body=None, token=None, content_type=None, timeout=10):
    """(status, parsed JSON, raw text or None). HTTP errors are returned, not raised."""
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
