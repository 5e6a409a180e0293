#!/usr/bin/env python3
"""Compose test: docker-compose.yml built and run for real, driven from the host.

    just compose-test                # images from the build cache where they can be
    just compose-test --fresh        # a cold start: base image made again, builds --no-cache
    python3 scripts/compose-test.py [--timeout 1200] [--fresh] [--no-build | --binary PATH] [--no-write]

What it does (Python 3 standard library only; as root, since it may install packages and
start dockerd):
  1. Docker: installs Debian's docker.io, docker-compose and debootstrap when the commands
     are missing; starts `dockerd` in the background when none answers (log:
     target/compose-test/dockerd.log), and stops it at the end only if it started it.
  2. The base image every service is built from: debian:bookworm-slim if it is present or
     can be pulled; otherwise a local one, made once with `debootstrap --variant=minbase
     bookworm` from the Debian mirror apt uses, slimmed like the official -slim image and
     `docker import`ed as landlord-local/debian:bookworm (kept for the next run). The stack
     gets its name through LANDLORD_COMPOSE_BASE_IMAGE.
  3. landlord: `cargo build --release -p landlord` on the host; the binary is imported as
     the image landlord-local/binary:compose-test (just /out/landlord), which the
     Dockerfile's runtime stage copies it from (BINARY_IMAGE, through
     scripts/compose-test.override.yml). No Rust toolchain image is needed or pulled.
  4. `compose build` of every service (BuildKit: `docker compose`, or docker-compose with
     DOCKER_BUILDKIT=1 and a docker CLI that has BuildKit built in), under the compose
     project `landlord-compose-test`, with free host ports on 127.0.0.1
     (LANDLORD_COMPOSE_*_PORT).
  5. `compose up -d`, then from the host: POST /v1/tenants (the compose file's admin
     token), POST /v1/domains shop.example.test, the ownership TXT record through
     challtestsrv's management API, POST /check, PUT /v1/files/index.html; waits for
     `active`; Pebble's root from its management port; GET https://shop.example.test/ on
     the published HTTPS port, verified against that root, body compared. Then the tenant's
     platform subdomain (`<slug>.sites.landlord.test`, the DNS-01 wildcard through Knot and
     Unbound) the same way.
  6. `compose logs` into target/compose-test/compose.log, `compose down -v` (also on failure,
     Ctrl-C or the overall timeout), a summary, and the section "Docker Compose (just
     compose-test)" of BENCHMARKS.md: image sizes, build times, time from `up` to the first
     served page.
"""

import argparse
import datetime as dt
from http.client import HTTPException
import json
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import traceback

from harness import (  # scripts/harness.py, shared with the bench scripts
    HarnessError, free_port, git_revision, http, logger, machine_facts, spawn, tail, terminate,
    write_section)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "compose-test")
BINARY = os.path.join(ROOT, "target", "release", "landlord")
COMPOSE_FILE = os.path.join(ROOT, "docker-compose.yml")
OVERRIDE_FILE = os.path.join(ROOT, "scripts", "compose-test.override.yml")
PROJECT = "landlord-compose-test"
SECTION = "## Docker Compose (just compose-test)"

PUBLIC_BASE = "debian:bookworm-slim"
LOCAL_BASE = "landlord-local/debian:bookworm"
BINARY_IMAGE = "landlord-local/binary:compose-test"
# The images docker-compose.yml (with the override) builds, by service; challtestsrv has the
# same build as pebble and is left out (building both with --no-cache would leave the first
# image behind untagged).
SERVICE_IMAGES = {
    "postgres": "landlord-postgres:dev",
    "pebble": "landlord-pebble:dev",      # also challtestsrv's
    "dns": "landlord-dns:dev",
    "landlord": "landlord:compose-test",
}
# docker-compose.yml's admin token: ${LANDLORD_ADMIN_TOKEN:-dev-admin-token}
ADMIN_TOKEN = os.environ.get("LANDLORD_ADMIN_TOKEN") or "dev-admin-token"
HOSTNAME = "shop.example.test"
# Log lines that say something about this machine, not about the stack: reported apart.
EXPECTED_LOG_LINES = [
    (r"^landlord.*WARN landlord::run: the open-file limit is below",
     "landlord's start-up notice that the open-file limit (this machine's hard limit, which dockerd "
     "and so every container inherit) is below what LANDLORD_MAX_CONNECTIONS could use"),
    (r"^postgres.*FATAL:  the database system is starting up",
     "the healthcheck's pg_isready probing while PostgreSQL starts"),
]

log = logger("compose-test", stamp=True)


class Deadline:
    """The overall time bound: every wait and subprocess gets at most what is left."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def left(self, cap=None):
        left = self.end - time.monotonic()
        if left <= 0:
            raise HarnessError(f"the overall timeout ({self.seconds:.0f} s) ran out")
        return left if cap is None else min(left, cap)


def run(cmd, deadline, cap=None, env=None, logfile=None, check=True, input=None):
    """Run cmd within what the deadline leaves (and cap s); its output into logfile
    (appended, with the command line first) or captured. (returncode, output text)."""
    timeout = deadline.left(cap)
    if logfile:
        with open(logfile, "a") as f:
            f.write(f"\n$ {shlex.join(cmd)}\n")
            f.flush()
            try:
                p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                   timeout=timeout, input=input)
            except subprocess.TimeoutExpired:
                raise HarnessError(f"{shlex.join(cmd)} took longer than {timeout:.0f} s "
                                   f"(log: {os.path.relpath(logfile, ROOT)})")
        out = ""
    else:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                               timeout=timeout, input=input)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"{shlex.join(cmd)} took longer than {timeout:.0f} s")
        out = (p.stdout or "") + (p.stderr or "")
    if check and p.returncode != 0:
        where = (f"; last lines of {os.path.relpath(logfile, ROOT)}:\n{tail(logfile, 25)}"
                 if logfile else f": {out.strip()[-2000:]}")
        raise HarnessError(f"{shlex.join(cmd)} exited {p.returncode}{where}")
    return p.returncode, out


def ok(cmd, env=None, timeout=30):
    """True if cmd exits 0 within timeout s (its output discarded)."""
    try:
        return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                              timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def fmt_bytes(n):
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


class ComposeTest:
    def __init__(self, args):
        self.args = args
        self.deadline = Deadline(args.timeout)
        self.runid = f"{os.getpid()}"
        self.dockerd = None            # the dockerd this run started, if any
        self.compose = None            # ["docker", "compose"] or ["docker-compose"]
        self.env = dict(os.environ)
        self.up_called = False
        self.timings = []              # (what, seconds), in order
        self.facts = {}                # what the section reports besides timings
        self.build_log = os.path.join(WORK, "build.log")
        self.replaced = {}             # image name -> the id it had before this run rebuilt it

    def timed(self, what, t0):
        took = time.monotonic() - t0
        self.timings.append((what, took))
        log(f"{what}: {took:.1f} s")
        return took

    # ------------------------------------------------------------ docker itself

    def install_missing(self):
        """Debian's packages for whatever of docker, dockerd, a compose and debootstrap is
        missing (root only: otherwise say what to install)."""
        want = []
        if not shutil.which("dockerd") or not shutil.which("docker"):
            want.append("docker.io")
        if not shutil.which("docker-compose") and not ok(["docker", "compose", "version"]):
            want.append("docker-compose")
        if not shutil.which("debootstrap"):
            want.append("debootstrap")
        if not want:
            return
        if os.geteuid() != 0:
            raise HarnessError(f"missing: {' '.join(want)} (apt-get install -y {' '.join(want)} as root)")
        log(f"installing {' '.join(want)} (apt-get; log target/compose-test/apt.log)")
        apt_log = os.path.join(WORK, "apt.log")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-q"], self.deadline, cap=300, env=env, logfile=apt_log)
        run(["apt-get", "install", "-y", "-q", *want], self.deadline, cap=600, env=env, logfile=apt_log)

    def ensure_dockerd(self):
        if ok(["docker", "info"], timeout=20):
            log("dockerd: already running, used as it is")
            self.facts["dockerd"] = "already running"
            return
        if os.geteuid() != 0:
            raise HarnessError("no Docker daemon answers and this is not root: start dockerd first")
        dlog = os.path.join(WORK, "dockerd.log")
        log(f"dockerd: starting it (log {os.path.relpath(dlog, ROOT)})")
        self.dockerd = spawn(["dockerd"], logfile=dlog)
        t0 = time.monotonic()
        while not ok(["docker", "info"], timeout=10):
            if self.dockerd.poll() is not None:
                raise HarnessError(f"dockerd exited with {self.dockerd.returncode}:\n{tail(dlog)}")
            if time.monotonic() - t0 > self.deadline.left(60):
                raise HarnessError(f"dockerd did not answer within 60 s:\n{tail(dlog)}")
            time.sleep(0.5)
        self.timed("dockerd start", t0)
        self.facts["dockerd"] = "started by this run, stopped at its end"

    def choose_compose(self):
        """`docker compose` where it exists, else docker-compose (1.29 in Debian 12), which
        builds through the `docker build` command: give it BuildKit (the Dockerfile's cache
        mounts need it) through a docker CLI that has it built in (Engine 20.10's, or one
        with the buildx plugin)."""
        _, server = run(["docker", "version", "--format", "{{.Server.Version}}"], self.deadline, cap=30)
        self.facts["engine"] = server.strip()
        if ok(["docker", "compose", "version"]):
            self.compose = ["docker", "compose"]
            _, v = run(["docker", "compose", "version", "--short"], self.deadline, cap=30)
        else:
            if not shutil.which("docker-compose"):
                raise HarnessError("neither `docker compose` nor docker-compose is installed")
            self.compose = ["docker-compose"]
            _, v = run(["docker-compose", "version", "--short"], self.deadline, cap=30)
            self.env.update(COMPOSE_DOCKER_CLI_BUILD="1", DOCKER_BUILDKIT="1")
            cli = self.buildkit_cli()
            if cli != shutil.which("docker"):
                shim = os.path.join(WORK, "bin")
                os.makedirs(shim, exist_ok=True)
                link = os.path.join(shim, "docker")
                if os.path.lexists(link):
                    os.remove(link)
                os.symlink(cli, link)
                self.env["PATH"] = shim + os.pathsep + self.env.get("PATH", "")
                log(f"docker-compose builds with {cli} (the first docker on PATH has no BuildKit)")
            self.facts["build_cli"] = cli
        self.facts["compose"] = f"{' '.join(self.compose)} {v.strip()}"
        log(f"compose: {self.facts['compose']}, engine {self.facts['engine']}")

    def buildkit_cli(self):
        """A docker CLI whose `docker build` runs BuildKit with DOCKER_BUILDKIT=1: one with the
        buildx plugin, or a client older than 23.0 (BuildKit built in)."""
        candidates = []
        for c in (shutil.which("docker"), "/usr/bin/docker"):
            if c and os.path.exists(c) and os.path.realpath(c) not in [os.path.realpath(x) for x in candidates]:
                candidates.append(c)
        for c in candidates:
            if ok([c, "buildx", "version"]):
                return c
            try:
                v = subprocess.run([c, "version", "--format", "{{.Client.Version}}"], capture_output=True,
                                   text=True, timeout=30).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                continue
            m = re.match(r"(\d+)\.", v)
            if m and int(m.group(1)) < 23:
                return c
        raise HarnessError("no docker CLI here can build with BuildKit (the Dockerfile needs it): "
                           "install the buildx plugin, or Debian's docker.io (its 20.10 client has it built in)")

    # ------------------------------------------------------------ images

    def image_exists(self, name):
        return ok(["docker", "image", "inspect", name])

    def image_id(self, name):
        """The image id a name points at, or None."""
        try:
            p = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", name], capture_output=True,
                               text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return p.stdout.strip() if p.returncode == 0 else None

    def drop_replaced(self, before):
        """Remove the images this run's builds and imports took the names from ({name: old
        id}), so repeated runs leave no untagged images; an id still tagged or used stays."""
        for name, old in reversed(list(before.items())):
            if old and self.image_id(name) != old:
                subprocess.run(["docker", "image", "rm", old], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=60)

    def image_size(self, name):
        _, out = run(["docker", "image", "inspect", "-f", "{{.Size}}", name], self.deadline, cap=30)
        return int(out.strip())

    def base_image(self):
        """debian:bookworm-slim when present or pullable; else the local debootstrap one."""
        t0 = time.monotonic()
        if self.image_exists(PUBLIC_BASE):
            self.base, how = PUBLIC_BASE, f"`{PUBLIC_BASE}`, already present"
        elif ok(["docker", "pull", PUBLIC_BASE], timeout=self.deadline.left(180)):
            self.base, how = PUBLIC_BASE, f"`{PUBLIC_BASE}`, pulled"
        elif self.image_exists(LOCAL_BASE) and not self.args.fresh:
            self.base = LOCAL_BASE
            how = (f"`{LOCAL_BASE}` (`{PUBLIC_BASE}` cannot be pulled here), made by an earlier run: "
                   + self.local_base_origin())
        else:
            self.base = LOCAL_BASE
            before = {LOCAL_BASE: self.image_id(LOCAL_BASE)}
            self.debootstrap_base()
            how = f"`{LOCAL_BASE}` (`{PUBLIC_BASE}` cannot be pulled here), made now: " + self.local_base_origin()
            self.replaced.update(before)
        self.facts["base"] = how
        self.env["LANDLORD_COMPOSE_BASE_IMAGE"] = self.base
        log(f"base image: {how}")
        self.timed("base image in all", t0)

    def local_base_origin(self):
        _, out = run(["docker", "image", "inspect", "-f", "{{.Comment}}", LOCAL_BASE], self.deadline, cap=30)
        return out.strip() or "debootstrap"

    def debian_mirror(self):
        """(the Debian mirror apt uses, its security mirror), deb.debian.org's by default."""
        mirror, security = "http://deb.debian.org/debian", None
        texts = []
        d = "/etc/apt/sources.list.d"
        extra = sorted(os.path.join(d, f) for f in os.listdir(d)
                       if f.endswith((".list", ".sources"))) if os.path.isdir(d) else []
        for path in ["/etc/apt/sources.list", *extra]:
            try:
                with open(path) as f:
                    texts.append(f.read())
            except OSError:
                pass
        uris = re.findall(r"(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", "\n".join(texts), re.M)
        found = [u.rstrip("/") for u in uris if re.search(r"/debian(-security)?$", u.rstrip("/"))]
        main = [u for u in found if not u.endswith("-security")]
        sec = [u for u in found if u.endswith("-security")]
        if main:
            mirror = main[0]
        security = sec[0] if sec else mirror + "-security"
        return mirror, security

    def debootstrap_base(self):
        """debootstrap --variant=minbase bookworm, slimmed as the official -slim image is
        (no documentation, manual pages or translations; apt lists and .debs removed; the
        same dpkg excludes for later installs), with bookworm-updates and security in its
        sources; imported as LOCAL_BASE."""
        if os.geteuid() != 0:
            raise HarnessError(f"{PUBLIC_BASE} cannot be pulled, and debootstrap needs root")
        mirror, security = self.debian_mirror()
        rootfs = os.path.join(WORK, "rootfs")
        if os.path.exists(rootfs):
            shutil.rmtree(rootfs)
        blog = os.path.join(WORK, "debootstrap.log")
        log(f"debootstrap --variant=minbase bookworm from {mirror} (log {os.path.relpath(blog, ROOT)})")
        t0 = time.monotonic()
        run(["debootstrap", "--variant=minbase", "bookworm", rootfs, mirror], self.deadline, cap=900,
            logfile=blog)
        self.timed("debootstrap", t0)
        with open(os.path.join(rootfs, "etc/dpkg/dpkg.cfg.d/docker-slim"), "w") as f:
            f.write("# as in the official debian:*-slim images\n"
                    "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n"
                    "path-exclude /usr/share/man/*\npath-exclude /usr/share/groff/*\n"
                    "path-exclude /usr/share/info/*\npath-exclude /usr/share/lintian/*\n"
                    "path-exclude /usr/share/linda/*\npath-exclude /usr/share/locale/*\n"
                    "path-include /usr/share/locale/locale.alias\n")
        with open(os.path.join(rootfs, "etc/apt/apt.conf.d/docker-clean"), "w") as f:
            f.write('DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
                    '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
                    'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
                    '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
                    'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n')
        with open(os.path.join(rootfs, "etc/apt/apt.conf.d/docker-no-languages"), "w") as f:
            f.write('Acquire::Languages "none";\n')
        os.remove(os.path.join(rootfs, "etc/apt/sources.list"))
        with open(os.path.join(rootfs, "etc/apt/sources.list.d/debian.sources"), "w") as f:
            f.write(f"Types: deb\nURIs: {mirror}\nSuites: bookworm bookworm-updates\nComponents: main\n"
                    f"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
                    f"Types: deb\nURIs: {security}\nSuites: bookworm-security\nComponents: main\n"
                    f"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
        # What the dpkg excludes would have left out, and the caches.
        script = ("set -e; cd \"$1\"; "
                  "find usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete; "
                  "find usr/share/doc -mindepth 1 -type d -empty -delete; "
                  "rm -rf usr/share/man/* usr/share/info/* usr/share/groff/* usr/share/lintian/* "
                  "usr/share/linda/*; "
                  "find usr/share/locale -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +; "
                  "rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* "
                  "var/log/* tmp/* etc/machine-id; : > etc/machine-id")
        run(["sh", "-c", script, "sh", rootfs], self.deadline, cap=120)
        _, version = run(["cat", os.path.join(rootfs, "etc/debian_version")], self.deadline, cap=10)
        t0 = time.monotonic()
        comment = f"debootstrap --variant=minbase bookworm {mirror} (Debian {version.strip()}), slimmed"
        tar = subprocess.Popen(["tar", "-C", rootfs, "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        try:
            p = subprocess.run(["docker", "import", "-m", comment, "-c", 'CMD ["bash"]',
                                "-c", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                "-", LOCAL_BASE], stdin=tar.stdout, capture_output=True, text=True,
                               timeout=self.deadline.left(300))
        finally:
            tar.stdout.close()
            tar.wait()
        if p.returncode != 0:
            raise HarnessError(f"docker import of the debootstrap tree failed: {p.stderr.strip()}")
        shutil.rmtree(rootfs)
        self.timed("docker import", t0)

    def landlord_binary(self):
        """The host's release build (or --binary), imported as BINARY_IMAGE (/out/landlord
        only)."""
        binary = self.args.binary or BINARY
        if not self.args.no_build and not self.args.binary:
            t0 = time.monotonic()
            log("cargo build --release -p landlord")
            run(["cargo", "build", "--release", "-p", "landlord"], self.deadline, cap=1200,
                logfile=os.path.join(WORK, "cargo.log"))
            self.timed("cargo build --release -p landlord (host)", t0)
        if not os.path.exists(binary):
            raise HarnessError(f"{binary} does not exist (build it, or drop --no-build)")
        stage = os.path.join(WORK, "binary")
        if os.path.exists(stage):
            shutil.rmtree(stage)
        os.makedirs(os.path.join(stage, "out"))
        shutil.copy2(binary, os.path.join(stage, "out", "landlord"))
        os.chmod(os.path.join(stage, "out", "landlord"), 0o755)
        self.replaced[BINARY_IMAGE] = self.image_id(BINARY_IMAGE)
        tar = subprocess.Popen(["tar", "-C", stage, "--numeric-owner", "--owner=0", "--group=0", "-c", "out"],
                               stdout=subprocess.PIPE)
        try:
            p = subprocess.run(["docker", "import", "-m", "target/release/landlord from the host", "-",
                                BINARY_IMAGE], stdin=tar.stdout, capture_output=True, text=True,
                               timeout=self.deadline.left(120))
        finally:
            tar.stdout.close()
            tar.wait()
        if p.returncode != 0:
            raise HarnessError(f"docker import of the landlord binary failed: {p.stderr.strip()}")
        shutil.rmtree(stage)
        self.env["LANDLORD_COMPOSE_BINARY_IMAGE"] = BINARY_IMAGE
        self.facts["binary_bytes"] = os.path.getsize(binary)
        rev = git_revision(ROOT, paths=["crates", "Cargo.lock", "Cargo.toml", "migrations", "static"])
        built = dt.datetime.fromtimestamp(os.path.getmtime(binary), dt.timezone.utc).strftime("%H:%M UTC")
        if self.args.binary:
            self.facts["binary_from"] = f"`{binary}` (given with --binary, built {built})"
        elif self.args.no_build:
            self.facts["binary_from"] = (f"the existing `target/release/landlord` (--no-build; built on the host "
                                         f"at {built}, work tree now at {rev})")
        else:
            self.facts["binary_from"] = ("`target/release/landlord` built on the host (`cargo build --release "
                                         f"-p landlord`) at {rev}")

    # ------------------------------------------------------------ compose

    def compose_cmd(self, *args):
        return [*self.compose, "-p", PROJECT, "-f", COMPOSE_FILE, "-f", OVERRIDE_FILE, *args]

    def ports(self):
        self.port = {
            "API": free_port(), "HTTP": free_port(), "HTTPS": free_port(),
            "PEBBLE": free_port(), "DNSMOCK": free_port(), "KNOT": free_port(udp_too=True),
        }
        for k, v in self.port.items():
            self.env[f"LANDLORD_COMPOSE_{k}_PORT"] = str(v)
        self.facts["ports"] = self.port
        log("host ports: " + ", ".join(f"{k.lower()} 127.0.0.1:{v}" for k, v in self.port.items()))

    def validate(self):
        """`compose config -q`: the file as users have it, and with the test's override."""
        plain = {k: v for k, v in self.env.items() if not k.startswith("LANDLORD_COMPOSE_")}
        run([*self.compose, "-f", COMPOSE_FILE, "config", "-q"], self.deadline, cap=60, env=plain)
        run(self.compose_cmd("config", "-q"), self.deadline, cap=60, env=self.env)
        log("compose config -q: docker-compose.yml, and with the override: valid")

    def build(self):
        t0 = time.monotonic()
        log(f"compose build (log {os.path.relpath(self.build_log, ROOT)})")
        self.replaced.update({name: self.image_id(name) for name in SERVICE_IMAGES.values()})
        extra = ["--no-cache"] if self.args.fresh else []
        run(self.compose_cmd("build", *extra, *SERVICE_IMAGES), self.deadline, env=self.env,
            logfile=self.build_log)
        self.timed(f"compose build{' --no-cache' if extra else ''} ({', '.join(SERVICE_IMAGES)})", t0)
        sizes = {name: self.image_size(name) for name in [self.base, *SERVICE_IMAGES.values()]}
        self.facts["sizes"] = sizes
        for name, size in sizes.items():
            log(f"image {name}: {fmt_bytes(size)}")

    def up(self):
        # A stack this project left behind (an interrupted run) would hold the subnet.
        run(self.compose_cmd("down", "-v", "--remove-orphans"), self.deadline, cap=120, env=self.env,
            logfile=os.path.join(WORK, "compose-up.log"), check=False)
        self.t_up = time.monotonic()
        self.up_called = True
        log("compose up -d")
        run(self.compose_cmd("up", "-d", "--no-build"), self.deadline, cap=300, env=self.env,
            logfile=os.path.join(WORK, "compose-up.log"))
        self.mark("`compose up -d` returned (postgres healthy, every container started)")

    def mark(self, what):
        took = time.monotonic() - self.t_up
        self.milestones.append((what, took))
        log(f"+{took:.1f} s after up: {what}")

    def down(self):
        if not self.compose or not self.up_called:
            return
        logs = os.path.join(WORK, "compose.log")
        try:
            p = subprocess.run(["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}",
                                "--format", "{{.Label \"com.docker.compose.service\"}}\t{{.Status}}"],
                               capture_output=True, text=True, timeout=60)
            self.facts["containers"] = sorted(line.split("\t", 1) for line in p.stdout.splitlines() if "\t" in line)
            for name, status in self.facts["containers"]:
                log(f"container {name}: {status}")
        except (OSError, subprocess.TimeoutExpired) as e:
            log(f"could not list the containers: {e}")
        try:
            with open(logs, "w") as f:
                subprocess.run(self.compose_cmd("logs", "--no-color", "--timestamps"), stdout=f,
                               stderr=subprocess.STDOUT, env=self.env, cwd=ROOT, timeout=120)
            log(f"container logs: {os.path.relpath(logs, ROOT)}")
            with open(logs, errors="replace") as f:
                self.facts["warnings"] = [
                    re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip() for line in f
                    if re.search(r"\b(WARN|ERROR|FATAL|PANIC)\b|panicked", re.sub(r"\x1b\[[0-9;]*m", "", line))]
        except (OSError, subprocess.TimeoutExpired) as e:
            log(f"could not save the container logs: {e}")
        try:
            t0 = time.monotonic()
            p = subprocess.run(self.compose_cmd("down", "-v", "--remove-orphans"), capture_output=True,
                               text=True, env=self.env, cwd=ROOT, timeout=180)
            self.facts["down"] = (f"exit 0 after {time.monotonic() - t0:.1f} s" if p.returncode == 0
                                  else f"exit {p.returncode}: {p.stderr.strip()[-500:]}")
            log(f"compose down -v: {self.facts['down']}")
        except (OSError, subprocess.TimeoutExpired) as e:
            self.facts["down"] = f"failed: {e}"
            log(f"compose down -v failed: {e}")
        self.up_called = False

    def stop_dockerd(self):
        if self.dockerd is None:
            return
        log("stopping the dockerd this run started")
        terminate(self.dockerd, 60)
        self.dockerd = None

    # ------------------------------------------------------------ the drive

    def api(self, method, path, body=None, token=None, content_type=None):
        return http(method, f"http://127.0.0.1:{self.port['API']}{path}", body, token=token,
                    content_type=content_type)

    def wait_for(self, what, probe, timeout, every=0.2):
        """probe() until it returns something true (returned), within timeout s and the
        overall deadline; HarnessError naming what and the last answer otherwise."""
        limit = self.deadline.left(timeout)
        end = time.monotonic() + limit
        last = None
        while time.monotonic() < end:
            try:
                res = probe()
            except (OSError, ssl.SSLError, ValueError, HTTPException) as e:
                res, last = None, repr(e)
            if res:
                return res
            time.sleep(every)
        bound = (f"the overall timeout ({self.deadline.seconds:.0f} s) ran out" if limit < timeout
                 else f"not within {timeout:.0f} s")
        raise HarnessError(f"{what}: {bound} (last: {last if last else 'no answer'})")

    def drive(self):
        self.milestones = []
        self.up()

        def healthz():
            status, _ = self.api("GET", "/healthz")
            return status == 200
        self.wait_for("landlord's GET /healthz on the published API port", healthz, 120)
        self.mark("API answers /healthz")

        status, tenant = self.api("POST", "/v1/tenants", {"name": "shop"}, token=ADMIN_TOKEN)
        if status != 201:
            raise HarnessError(f"POST /v1/tenants: HTTP {status} {tenant}")
        key = tenant["api_key"]
        status, dom = self.api("POST", "/v1/domains", {"hostname": HOSTNAME}, token=key)
        if status != 201:
            raise HarnessError(f"POST /v1/domains: HTTP {status} {dom}")
        own = dom.get("ownership")
        mgmt = f"http://127.0.0.1:{self.port['DNSMOCK']}"
        if own and not own.get("verified"):
            status, res = http("POST", f"{mgmt}/set-txt", {"host": own["name"] + ".", "value": own["value"]})
            if status != 200:
                raise HarnessError(f"challtestsrv /set-txt: HTTP {status} {res}")
            self.facts["ownership"] = f"TXT `{own['name']}` published through challtestsrv's /set-txt"
        else:
            self.facts["ownership"] = "no ownership record asked for"
        status, res = self.api("POST", f"/v1/domains/{dom['id']}/check", token=key)
        if status not in (202, 429):
            raise HarnessError(f"POST /v1/domains/{dom['id']}/check: HTTP {status} {res}")
        page = f"<h1>Hello from the compose test {self.runid}</h1>\n"
        status, res = self.api("PUT", "/v1/files/index.html", page.encode(), token=key,
                               content_type="text/html")
        if status != 204:
            raise HarnessError(f"PUT /v1/files/index.html: HTTP {status} {res}")
        self.mark(f"tenant, domain {HOSTNAME}, ownership record, check and index.html sent")

        def active():
            status, d = self.api("GET", f"/v1/domains/{dom['id']}", token=key)
            if status == 200 and d.get("status") == "failed":
                raise HarnessError(f"{HOSTNAME} failed: {d.get('last_error')}")
            return d if status == 200 and d.get("status") == "active" else None
        try:
            d = self.wait_for(f"{HOSTNAME} active", active, 240)
        except HarnessError:
            _, ev = self.api("GET", f"/v1/domains/{dom['id']}/events", token=key)
            _, d = self.api("GET", f"/v1/domains/{dom['id']}", token=key)
            log(f"domain now: {json.dumps(d)[:1500]}")
            log(f"events: {json.dumps(ev)[:3000]}")
            raise
        self.mark(f"{HOSTNAME} `active`")
        self.facts["certificate"] = d.get("certificate")

        root = self.pebble_root()
        cert = self.wait_for(f"https://{HOSTNAME}/ with the expected body",
                             lambda: self.fetch(HOSTNAME, root, page), 60)
        self.mark(f"first page served: GET https://{HOSTNAME}/ verified against Pebble's root")
        self.facts["page_cert"] = cert

        status, sites = self.api("GET", "/v1/sites", token=key)
        platform = (sites.get("sites") or [{}])[0].get("platform_hostname") if status == 200 else None
        if not platform:
            raise HarnessError(f"GET /v1/sites: no platform_hostname: HTTP {status} {sites}")
        cert = self.wait_for(f"https://{platform}/ (DNS-01 wildcard) with the expected body",
                             lambda: self.fetch(platform, root, page), 180, every=0.5)
        self.mark(f"platform subdomain served: GET https://{platform}/ (wildcard through DNS-01)")
        self.facts["platform"] = platform
        self.facts["platform_cert"] = cert

    def pebble_root(self):
        """Pebble's root (new at every start) from its management port; Pebble's own API
        certificate is the throwaway one from the image, so it is not verified here."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        def get():
            with socket.create_connection(("127.0.0.1", self.port["PEBBLE"]), timeout=5) as s:
                with ctx.wrap_socket(s, server_hostname="localhost") as t:
                    t.sendall(b"GET /roots/0 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    raw = b""
                    while chunk := t.recv(65536):
                        raw += chunk
            head, _, body = raw.partition(b"\r\n\r\n")
            if b" 200 " not in head.split(b"\r\n")[0] or b"BEGIN CERTIFICATE" not in body:
                return None
            return body.decode()
        pem = self.wait_for("Pebble's GET /roots/0", get, 30)
        with open(os.path.join(WORK, "pebble-root.pem"), "w") as f:
            f.write(pem)
        return pem

    def fetch(self, hostname, root_pem, expected):
        """GET https://hostname/ through 127.0.0.1:<published HTTPS port>, the chain verified
        against root_pem for hostname; the peer certificate's issuer and expiry when the body
        is `expected`, else None."""
        ctx = ssl.create_default_context(cadata=root_pem)
        with socket.create_connection(("127.0.0.1", self.port["HTTPS"]), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=hostname) as t:
                t.sendall(f"GET / HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n".encode())
                raw = b""
                while chunk := t.recv(65536):
                    raw += chunk
                cert = t.getpeercert()
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n")[0].decode(errors="replace")
        if " 200 " not in status_line + " ":
            return None
        if b"chunked" in head.lower():
            body = dechunk(body)
        if body.decode(errors="replace") != expected:
            return None
        issuer = dict(x[0] for x in cert.get("issuer", ()))
        return {"issuer": issuer.get("commonName", "?"), "not_after": cert.get("notAfter"),
                "subject_alt_names": [v for _, v in cert.get("subjectAltName", ())]}


def dechunk(body):
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


# ---------------------------------------------------------------- report

def anomalies(t):
    """What looked wrong besides a failed step: a container not up at the end, WARN/ERROR
    lines in the containers' logs, a `down` that did not exit 0."""
    f = t.facts
    out = [f"container {name} was `{status}` at the end, not up" for name, status in f.get("containers", [])
           if not status.startswith("Up")]
    unexpected = [w for w in f.get("warnings", []) if not expected_line(w)]
    if unexpected:
        out.append(f"{len(unexpected)} WARN/ERROR line(s) in the containers' logs; first: "
                   f"`{unexpected[0][:300]}`")
    if f.get("down") and not f["down"].startswith("exit 0"):
        out.append(f"`compose down -v`: {f['down']}")
    return out


def expected_line(line):
    """The explanation of a log line in EXPECTED_LOG_LINES, or None."""
    for pattern, why in EXPECTED_LOG_LINES:
        if re.search(pattern, line):
            return why
    return None


def expected_seen(t):
    """{explanation: count} of the expected WARN/ERROR lines this run logged."""
    seen = {}
    for w in t.facts.get("warnings", []):
        why = expected_line(w)
        if why:
            seen[why] = seen.get(why, 0) + 1
    return seen


def report(t, meta, ok_, error):
    f = t.facts
    lines = []
    lines.append(f"Result: {'PASSED' if ok_ else 'FAILED: ' + error}")
    lines.append(f"Base image: {f.get('base', 'n/a')}")
    lines.append(f"Compose: {f.get('compose', 'n/a')}, Docker Engine {f.get('engine', 'n/a')} "
                 f"(dockerd {f.get('dockerd', 'n/a')})")
    if "sizes" in f:
        lines.append("Image sizes (docker image inspect .Size):")
        for name, size in f["sizes"].items():
            lines.append(f"  {name:32} {fmt_bytes(size):>8}")
    for what, s in t.timings:
        lines.append(f"  {what}: {s:.1f} s")
    if getattr(t, "milestones", None):
        lines.append("After `compose up -d` was called:")
        for what, s in t.milestones:
            lines.append(f"  +{s:6.1f} s  {what}")
    if f.get("down"):
        lines.append(f"compose down -v: {f['down']}")
    for why, n in expected_seen(t).items():
        lines.append(f"  expected log line ({n}x): {why}")
    for a in anomalies(t):
        lines.append(f"  ! {a}")
    for w in [w for w in f.get("warnings", []) if not expected_line(w)][:10]:
        lines.append(f"    {w[:300]}")
    return "\n".join(lines)


def write_markdown(t, meta):
    f = t.facts
    base_size = f["sizes"][t.base]
    sizes = "\n".join(f"| `{name}` | {what} | {fmt_bytes(size)} | "
                      f"{'' if name == t.base else fmt_bytes(size - base_size)} |" for name, size, what in [
        (t.base, f["sizes"][t.base], "base of every image below"),
        (SERVICE_IMAGES["postgres"], f["sizes"][SERVICE_IMAGES["postgres"]],
         "postgres: Debian `postgresql-15` (deploy/postgres)"),
        (SERVICE_IMAGES["pebble"], f["sizes"][SERVICE_IMAGES["pebble"]],
         "pebble and challtestsrv: Debian `pebble` 2.4.0 (deploy/pebble)"),
        (SERVICE_IMAGES["dns"], f["sizes"][SERVICE_IMAGES["dns"]], "dns: Debian `knot` + `unbound` (deploy/dns)"),
        (SERVICE_IMAGES["landlord"], f["sizes"][SERVICE_IMAGES["landlord"]],
         f"landlord: the Dockerfile's runtime stage + the host-built binary ({fmt_bytes(f['binary_bytes'])})"),
    ])
    builds = "\n".join(f"| {what} | {s:.1f} s |" for what, s in t.timings)
    miles = "\n".join(f"| +{s:.1f} s | {what} |" for what, s in t.milestones)
    first_page = next(s for what, s in t.milestones if what.startswith("first page served"))
    issues = anomalies(t)
    notes = ("\n**Anomalies seen in this run:**\n\n" + "\n".join(f"- {i}" for i in issues) + "\n" if issues else
             "\nNo anomalies: every container was still up at the end, no unexpected WARN/ERROR line in any "
             "container's log, `down -v` exited 0.\n")
    seen = expected_seen(t)
    if seen:
        notes += ("\nExpected WARN/ERROR lines (about this machine, not the stack): "
                  + "; ".join(f"{why} ({n}×)" for why, n in seen.items()) + ".\n")
    pc = f.get("page_cert") or {}
    section = f"""{SECTION}

Command: `{meta['command']}` (runs `{meta['script_command']}`)

- Date: {meta['date']}
- Machine: {meta['machine']['nproc']} CPUs (`nproc`), {meta['machine']['model']}, {meta['machine']['mem']}, {meta['machine']['os']}; no container registry reachable
- Docker Engine {f['engine']} (Debian `docker.io`; dockerd {f['dockerd']}), {f['compose']}; images built with BuildKit; containers get dockerd's open-file limit, here {meta['nofile']} (`ulimit -n`/`-Hn` of this shell)
- Base image: {f['base']}
- landlord: {f['binary_from']}, copied into the Dockerfile's runtime stage through `BINARY_IMAGE` (scripts/compose-test.override.yml); the Dockerfile's Rust builder stage was not run
- Stack: `docker-compose.yml` as users have it plus that override, compose project `{PROJECT}`, host ports on 127.0.0.1 chosen free for the run (`LANDLORD_COMPOSE_*_PORT`)
- Drive, from the host: POST /v1/tenants, POST /v1/domains `{HOSTNAME}`, {f.get('ownership', '')}, POST /check, PUT /v1/files/index.html; wait for `active`; Pebble's root from GET /roots/0 on its management port; GET https://{HOSTNAME}/ on the published HTTPS port, verified against that root (issuer `{pc.get('issuer', '?')}`), body compared; then the same for the platform subdomain `{f.get('platform', '?')}` (wildcard certificate through DNS-01, Knot + Unbound); `compose down -v` ({f.get('down', '?')})

**Time from `compose up -d` to the first served page: {first_page:.1f} s** (images already built; includes waiting for PostgreSQL's healthcheck, the tenant's API calls and the certificate's issuance; the host polls every 0.2 s).

| after `compose up -d` was called | step |
|---:|---|
{miles}

Image sizes are `docker image inspect`'s `.Size` (uncompressed); every image shares the base's layers, so
the last column is what each adds on disk.

| image | what | size | over the base |
|---|---|---:|---:|
{sizes}

| step before `up` | time |
|---|---:|
{builds}
{notes}"""
    write_section(ROOT, SECTION, section, log)


# ---------------------------------------------------------------- main

class Timeout(Exception):
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timeout", type=float, default=1200,
                    help="overall bound in seconds, clean-up included (default 1200)")
    ap.add_argument("--no-build", action="store_true", help="use the existing target/release/landlord")
    ap.add_argument("--binary", metavar="PATH",
                    help="put this landlord binary into the image instead (built for Debian 12 / glibc 2.36 or "
                         "older); no cargo build")
    ap.add_argument("--fresh", action="store_true",
                    help=f"measure a cold start: make {LOCAL_BASE} again with debootstrap even if it exists "
                         "(when the public base cannot be used), and `compose build --no-cache`")
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    ap.add_argument("--command-label", default=None,
                    help="the command to record in BENCHMARKS.md (the justfile passes `just compose-test`)")
    args = ap.parse_args()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    # The hard bound: whatever is running when it passes is abandoned for the clean-up, which
    # has a few minutes of its own.
    def on_alarm(_signum, _frame):
        raise Timeout(f"the overall timeout ({args.timeout:.0f} s) ran out")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.timeout) + 1)

    os.makedirs(WORK, exist_ok=True)
    for name in ("build.log", "compose-up.log", "cargo.log"):
        try:
            os.remove(os.path.join(WORK, name))
        except FileNotFoundError:
            pass
    script_command = "python3 scripts/compose-test.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    facts = machine_facts()
    meta = {
        "command": (args.command_label or script_command).strip(),
        "script_command": script_command.strip(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nofile": "/".join(str(x) for x in resource.getrlimit(resource.RLIMIT_NOFILE)),
        "machine": {"nproc": os.cpu_count(), "model": facts["model"], "mem": facts["mem"],
                    "os": facts["distro"] or "unknown"},
    }
    t = ComposeTest(args)
    error = None
    t_all = time.monotonic()
    try:
        t.install_missing()
        t.ensure_dockerd()
        t.choose_compose()
        t.base_image()
        t.landlord_binary()
        t.ports()
        t.validate()
        t.build()
        t.drive()
    except (HarnessError, Timeout) as e:
        error = str(e)
    except KeyboardInterrupt as e:
        error = f"interrupted ({e})"
    except Exception as e:  # a bug here, or something unforeseen: still clean up
        traceback.print_exc()
        error = f"{type(e).__name__}: {e}"
    finally:
        signal.alarm(0)
        # The clean-up gets its own bound.
        signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(300)
        try:
            t.down()
            if t.compose:
                # Old images only once no container of this project uses them any more.
                t.drop_replaced(t.replaced)
            t.stop_dockerd()
        except Timeout as e:
            log(f"clean-up: {e}")
        finally:
            signal.alarm(0)
    print()
    print(f"Compose test ({time.monotonic() - t_all:.0f} s in all)")
    print(report(t, meta, error is None, error))
    if error:
        log(f"FAILED: {error}")
        log(f"logs: {os.path.relpath(WORK, ROOT)}/ (build.log, compose-up.log, compose.log, dockerd.log)")
        return 1
    if not args.no_write:
        write_markdown(t, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
