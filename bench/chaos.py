#!/usr/bin/env python3
"""pushgate's own chaos test.

Concurrent pushers push to two bare repositories with pushgate's hooks (own branches, a
shared `main` with fetch + rebase, forced updates, multi-ref pushes with creates and
deletes, tags) while a killer SIGKILLs pre-receives, post-receives and deliverers at random
instants, a `deliver --watch` is killed and restarted, HTTP receivers answer
200/503/408/429, hang past the timeout, drop connections, die and come back, a script
connector sometimes exits 75, and for a while the spool's small tmpfs is full. Then it
quiesces (healthy receivers, deliverers until nothing is pending) and checks:

- every ref update that landed (recorded independently by a `reference-transaction`
  hook) reached every connector at least once;
- per connector and repository, first deliveries came in sequence order;
- sequences are 1..N per repository (no gaps), one event per sequence;
- one delivery id per (connector, event) across retries, never shared;
- nothing pending, dead, disabled or set aside; `incoming/` empty;
- `queue status --json`, `queue list --json` and `log --json` worked throughout;
- no event reports a ref update that did not land; every attempt the log says was
  delivered reached its receiver.

With `--backend postgres` ([spool] backend = "postgres", SPEC section 11) the script also
starts a PostgreSQL of its own (bench/pg.py): the hooks still record into the local spool,
the deliverers relay it into the database's outbox and deliver from there, and three more
`deliver --watch` workers (other machines: each its own configuration and spool, the same
database and connectors) are SIGKILLed, SIGTERMed or SIGSTOPped past their lease at random
and restarted, while the database is stopped (immediate: SIGQUIT, as `pg_ctl stop -m
immediate`) and started again a few times. The same checks hold, plus: the outbox empty,
one relayed row per (event, connector).

It prints its counts and exits 1 on any violation (2: it could not run). Run as root: it
mounts a private tmpfs for its scratch dir and a small one for the spool.

    cargo build --release
    python3 bench/chaos.py --quick        # 60 pushes, >= 30 kills: the CI run (< 2 min)
    python3 bench/chaos.py                # 300 pushes, >= 100 kills
    python3 bench/chaos.py --pushes 1000 --pushers 6 --seed 7 --keep
    python3 bench/chaos.py --quick --backend postgres

Python 3.11, standard library only; touches only its scratch dir and 127.0.0.1.
"""

import argparse
import collections
import errno
import heapq
import http.server
import json
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZERO = "0" * 40
REPOS = ["alpha", "beta"]
HTTP_CONNECTORS = ["web1", "web2"]
SCRIPT_CONNECTOR = "rec"
CONNECTORS = HTTP_CONNECTORS + [SCRIPT_CONNECTOR]
KILLABLE = ["pre-receive", "post-receive", "deliver-once", "deliver-watch"]
WORKERS_DIR = "workers"  # --backend postgres: the workers' configurations and spools


def base_name(connector):
    """A connector's extension name: queues are named `<name>~<8 hex digits>`."""
    return connector.split("~", 1)[0]


def say(text):
    print(f"chaos: {text}", flush=True)


class Counter:
    """A thread-safe counter of named things."""

    def __init__(self):
        self.lock = threading.Lock()
        self.c = collections.Counter()

    def add(self, key, n=1):
        with self.lock:
            self.c[key] += n

    def get(self, key):
        with self.lock:
            return self.c[key]

    def snapshot(self):
        with self.lock:
            return collections.Counter(self.c)


# --------------------------------------------------------------------------- the lab

CONFIG = """\
[identity]
env = ["PUSHGATE_USER"]

[[rule]]
users = ["*"]
allow = ["all"]

[spool]
dir = "{spool}"
retry = [{retry}]
on_full = "reject"
{backend}
[[extension]]
name = "web1"
type = "http"
phase = "post"
url = "http://127.0.0.1:{port1}/hook"
timeout = "{timeout}s"

[[extension]]
name = "web2"
type = "http"
phase = "post"
url = "http://127.0.0.1:{port2}/hook"
timeout = "{timeout}s"

[[extension]]
name = "rec"
type = "script"
phase = "post"
command = [{recorder}]
timeout = "30s"
"""

# Records every committed ref update of its repository, independently of pushgate.
REFERENCE_TRANSACTION = """\
#!/bin/bash
# chaos.py: every ref update that lands, independently of pushgate's hooks (with the time and
# the receive-pack that made it: spool records are named after it).
if [ "$1" != committed ]; then exec cat >/dev/null; fi
exec 9>>'{log}'
flock 9
while read -r old new ref; do printf '%s %s %s %s %s\\n' "$EPOCHREALTIME" "$PPID" "$old" "$new" "$ref" >&9; done
"""

# The script connector: records what it was given, sometimes fails transiently (exit 75).
RECORDER = r'''
import fcntl, json, os, random, sys, time
out, healthy = sys.argv[1], sys.argv[2]
body = sys.stdin.buffer.read()
try:
    ev = json.loads(body)
    summary = {"id": ev.get("id"), "sequence": ev.get("sequence"), "schema": ev.get("schema"),
               "repo": ev["repository"]["name"], "path": ev["repository"]["path"],
               "changes": [[c["ref"], c["before"], c["after"]] for c in ev.get("changes", [])]}
except Exception as e:
    summary = {"malformed": f"{e}: {body[:200]!r}"}
code = 0 if os.path.exists(healthy) or random.random() >= 0.2 else 75
if not os.path.exists(healthy) and random.random() < 0.3:
    time.sleep(random.uniform(0, 0.3))
line = json.dumps({"kind": str(code), "chaos": not os.path.exists(healthy), "delivery": os.environ.get("PUSHGATE_DELIVERY_ID"),
                   "event_id": os.environ.get("PUSHGATE_EVENT_ID"), "event": summary, "pid": os.getpid()})
with open(out, "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.write(line + "\n")
    f.flush()
sys.exit(code)
'''


def summarize(ev):
    return {
        "id": ev.get("id"),
        "sequence": ev.get("sequence"),
        "schema": ev.get("schema"),
        "repo": ev["repository"]["name"],
        "path": ev["repository"]["path"],
        "changes": [[c["ref"], c["before"], c["after"]] for c in ev.get("changes", [])],
    }


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """Scratch dir, tmpfs mounts, repositories, configuration, the git environment."""

    def __init__(self, args):
        self.args = args
        self.binary = Path(args.binary).resolve()
        self.mounts = []
        self.work = Path(tempfile.mkdtemp(prefix="pushgate-chaos-"))
        if os.geteuid() == 0 and not args.no_tmpfs:
            self.mount(self.work, "1g")
        self.spoolfs = self.work / "spoolfs"
        self.spoolfs.mkdir()
        self.full_disk = os.geteuid() == 0 and not args.no_full_disk
        self.image = None
        if self.full_disk and args.spool_fs == "ext4":
            # A small ext4 on a loop device over a file on the disk: fsync costs what it costs.
            fd, image = tempfile.mkstemp(prefix="pushgate-chaos-spool-", suffix=".img", dir="/var/tmp")
            os.close(fd)
            self.image = Path(image)
            subprocess.run(["truncate", "-s", args.spool_size, image], check=True)
            subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", image], check=True, capture_output=True)
            self.mount(self.spoolfs, None, image)
        elif self.full_disk:
            self.mount(self.spoolfs, args.spool_size)
        self.spool = self.spoolfs / "spool"
        self.filler = self.spoolfs / "filler"
        # --backend postgres: not named pushgate.toml, a repository's file name: pushgate names
        # the connectors of a file so named `<name>~<hash of its directory>`, and the
        # workers' (in other directories) would not be the server's.
        self.config = self.work / ("config.toml" if args.backend == "postgres" else "pushgate.toml")
        self.healthy_flag = self.work / "script-healthy"
        self.script_log = self.work / "script.jsonl"
        self.watch_log = self.work / "watch.log"
        home = self.work / "home"
        home.mkdir()
        (home / ".gitconfig").write_text(
            "[user]\n\tname = Chaos\n\temail = chaos@example.org\n"
            "[init]\n\tdefaultBranch = main\n[gc]\n\tauto = 0\n"
            "[advice]\n\tdetachedHead = false\n\tpushUpdateRejected = false\n"
            "[core]\n\tfsync = none\n"
        )
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
            "GIT_TERMINAL_PROMPT": "0",
            "PUSHGATE_CONFIG": str(self.config),
        }
        self.ports = {name: free_port() for name in HTTP_CONNECTORS}
        self.servers = {}
        self.landed_logs = {}
        self.db = None            # --backend postgres: the PgServer
        self.db_lock = threading.Lock()
        self.db_epoch = 0         # +1 at every stop and every start of the database
        self.worker_configs = []  # --backend postgres: (config, spool) of each worker

    def mount(self, path, size, image=None):
        argv = ["mount", "-o", "loop", image, str(path)] if image else \
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "pushgate-chaos", str(path)]
        proc = subprocess.run(argv, capture_output=True)
        if proc.returncode != 0:
            sys.exit(f"chaos: mount -t tmpfs {path} failed: {proc.stderr.decode().strip()}")
        self.mounts.append(path)

    def git(self, cwd, *argv, check=True, env=None):
        proc = subprocess.run(["git", *argv], cwd=cwd, env=env or self.env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(argv)} in {cwd} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def pushgate(self, *argv, timeout=60):
        return subprocess.run([str(self.binary), *argv], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def setup(self):
        retry = ", ".join(f'"{s}"' for s in ["1s", "1s", "1s", "2s"] + ["2s", "3s"] * 60)
        recorder = self.work / "recorder.py"
        recorder.write_text(RECORDER)
        argv = [sys.executable, "-S", str(recorder), str(self.script_log), str(self.healthy_flag)]
        backend = ""
        if self.args.backend == "postgres":
            from pg import PgServer
            self.db = PgServer()
            url_file = self.work / "db.url"
            url_file.write_text(self.db.url + "\n")
            backend = (f'backend = "postgres"\nurl_file = "{url_file}"\nlease = "{self.args.lease}"\n')

        def config_text(spool):
            return CONFIG.format(
                spool=spool, retry=retry, port1=self.ports["web1"], port2=self.ports["web2"],
                timeout=self.args.http_timeout, recorder=", ".join(json.dumps(a) for a in argv), backend=backend)

        self.config.write_text(config_text(self.spool))
        if self.db:
            # The workers: other machines of the fleet (each its own spool and configuration,
            # the same database and connectors).
            for i in range(self.args.workers):
                home = self.work / WORKERS_DIR / f"w{i}"
                home.mkdir(parents=True)
                config = home / "config.toml"
                config.write_text(config_text(home / "spool"))
                self.worker_configs.append((config, home / "spool"))
        check = self.pushgate("check")
        if check.returncode != 0:
            sys.exit(f"chaos: pushgate check failed:\n{check.stdout}{check.stderr}")
        seed = self.work / "seed"
        self.git(self.work, "init", "-q", str(seed))
        for k in range(3):
            (seed / f"base{k}.txt").write_text(f"base {k}\n")
        self.git(seed, "add", "-A")
        self.git(seed, "commit", "-q", "-m", "base")
        self.server_dirs = {}
        for repo in REPOS:
            srv = self.work / "srv" / f"{repo}.git"
            srv.parent.mkdir(exist_ok=True)
            self.git(self.work, "init", "-q", "--bare", str(srv))
            self.git(srv, "config", "receive.autogc", "false")
            self.git(seed, "push", "-q", str(srv), "main")
            out = self.pushgate("install", str(srv))
            if out.returncode != 0:
                sys.exit(f"chaos: pushgate install failed: {out.stderr}")
            log = self.work / f"landed-{repo}.log"
            log.touch()
            hook = srv / "hooks" / "reference-transaction"
            hook.write_text(REFERENCE_TRANSACTION.format(log=log))
            hook.chmod(0o755)
            self.landed_logs[repo] = log
            self.server_dirs[repo] = srv.resolve()

    def clone(self, pusher, repo):
        dest = self.work / "clones" / f"p{pusher}" / repo
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.git(self.work, "clone", "-q", str(self.server_dirs[repo]), str(dest))
        return dest

    def db_state(self):
        """(epoch, running) of the database, read together."""
        with self.db_lock:
            return self.db_epoch, bool(self.db and self.db.running)

    def cleanup(self):
        if self.db:
            self.db.cleanup()
        for path in reversed(self.mounts):
            for _ in range(20):
                if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                    break
                time.sleep(0.5)
        shutil.rmtree(self.work, ignore_errors=True)
        if self.image:
            self.image.unlink()


# --------------------------------------------------------------------------- processes

def proc_start(pid):
    """(state, start time) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    rest = text[text.rfind(b")") + 2:].split()
    return rest[0].decode(), int(rest[19])


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return None


def ours(pid, work):
    """Whether a pushgate process belongs to this run (its config is in our scratch dir)."""
    mark = str(work).encode()
    args = cmdline(pid) or []
    if any(mark in a for a in args):
        return True
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return mark in f.read()
    except OSError:
        return False


def kind_of(args):
    if not args:
        return None
    name = os.path.basename(args[0].decode(errors="replace"))
    if name in ("pre-receive", "post-receive"):
        return name
    words = [a.decode(errors="replace") for a in args]
    if "deliver" in words:
        if any(f"/{WORKERS_DIR}/" in w for w in words):
            return "worker"
        return "deliver-watch" if "--watch" in words else "deliver-once"
    return None


def pushgate_pids(lab):
    """The running (not zombie) pushgate processes of this run, with their kind."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            if os.readlink(f"/proc/{pid}/exe") != str(lab.binary):
                continue
        except OSError:
            continue
        st = proc_start(pid)
        if st and st[0] not in "ZX" and ours(pid, lab.work):
            found.append((pid, kind_of(cmdline(pid))))
    return found


NETLINK_CONNECTOR, CN_IDX_PROC, CN_VAL_PROC = 11, 1, 1
PROC_EVENT_EXEC, PROC_EVENT_EXIT = 0x00000002, 0x80000000


def proc_connector():
    """A netlink socket that hears every exec and exit on the machine (root only), or None."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.bind((0, CN_IDX_PROC))
        payload = struct.pack("=I", 1)  # PROC_CN_MCAST_LISTEN
        msg = struct.pack("=IIIIHH", CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
        sock.send(struct.pack("=IHHII", 16 + len(msg), 3, 0, 0, 0) + msg)  # NLMSG_DONE
        sock.setblocking(False)
        return sock
    except OSError:
        return None


class Killer(threading.Thread):
    """Hears this run's pushgate processes start (the kernel's proc connector: every exec,
    at once; else a /proc scan every 2 ms) and SIGKILLs some of them at a uniformly random
    instant of their kind's lifetime (as measured in this run), wherever they are then."""

    def __init__(self, lab, rng, progress, kill_target):
        super().__init__(daemon=True)
        self.lab, self.rng, self.progress, self.kill_target = lab, rng, progress, kill_target
        self.stop = threading.Event()
        self.kills = Counter()
        self.missed = Counter()
        self.seen = Counter()
        self.lifetimes = {k: collections.deque([d], maxlen=64) for k, d in
                          [("pre-receive", 0.08), ("post-receive", 0.01), ("deliver-once", 0.3)]}
        self.exe = str(lab.binary)
        self.known = {}   # pid -> (kind, start, time seen, args)
        self.timers = []  # heap: (when, seq, pid, start, kind, pidfd)
        self.seq = 0
        self.log_lock = threading.Lock()
        self.sock = proc_connector()
        self.how = "proc connector" if self.sock else "/proc scan"

    def total(self):
        """The kills that count: post-receives and deliverers (pre-receive kills are extra)."""
        kills = self.kills.snapshot()
        return sum(n for kind, n in kills.items() if kind != "pre-receive")

    def probability(self, kind):
        desired = 1.3 * self.kill_target * self.progress() + 2
        behind = self.total() < desired
        if self.lab.args.harsh:
            return {"pre-receive": 0.3, "post-receive": 0.9, "deliver-once": 0.6}[kind]
        return {"pre-receive": (0.1, 0.05), "post-receive": (0.9, 0.35),
                "deliver-once": (0.6, 0.2)}[kind][0 if behind else 1]

    def instant(self, kind):
        """When to kill: a uniformly random instant of a lifetime drawn from those seen."""
        return self.rng.uniform(0, self.rng.choice(self.lifetimes[kind]))

    def consider(self, pid, now):
        """A process that just exec'd (or was just found): ours to kill, some time?"""
        try:
            if os.readlink(f"/proc/{pid}/exe") != self.exe:
                return False
        except OSError:
            return False
        args = cmdline(pid)
        kind = kind_of(args)
        st = proc_start(pid)
        if st is None or kind is None or not ours(pid, self.lab.work):
            return True
        self.known[pid] = (kind, st[1], now, args)
        self.seen.add(kind)
        # The Watcher and the Workers kill their own.
        if kind not in ("deliver-watch", "worker") and self.rng.random() < self.probability(kind):
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                return True
            self.seq += 1
            heapq.heappush(self.timers, (now + self.instant(kind), self.seq, pid, st[1], kind, fd))
        return True

    def ended(self, pid, now):
        info = self.known.pop(pid, None)
        if info and info[0] in self.lifetimes:
            self.lifetimes[info[0]].append(now - info[2])

    def run(self):
        scanned = {}  # /proc scan: pid -> "other" | "git" | args of a pushgate process
        while not self.stop.is_set():
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, pid, start, kind, fd = heapq.heappop(self.timers)
                self.fire(pid, start, kind, fd)
            wait = min(0.01, max(0.0, self.timers[0][0] - now)) if self.timers else 0.01
            if self.sock:
                self.listen(wait)
            else:
                time.sleep(min(wait, 0.002))
                self.scan(scanned, time.monotonic())
        for _, _, _, _, _, fd in self.timers:
            os.close(fd)

    def listen(self, wait):
        ready, _, _ = select.select([self.sock], [], [], wait)
        if not ready:
            return
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:  # ENOBUFS: events were lost; go on
                continue
            now = time.monotonic()
            offset = 0
            while offset + 16 <= len(data):
                length = struct.unpack_from("=I", data, offset)[0]
                if length < 16:
                    break
                what = struct.unpack_from("=I", data, offset + 36)[0] if length >= 40 else None
                if what == PROC_EVENT_EXEC:
                    pid, tgid = struct.unpack_from("=II", data, offset + 52)
                    if pid == tgid:
                        self.consider(pid, now)
                elif what == PROC_EVENT_EXIT:
                    pid, tgid = struct.unpack_from("=II", data, offset + 52)
                    if pid == tgid:
                        self.ended(pid, now)
                offset += (length + 3) & ~3

    def scan(self, scanned, now):
        try:
            entries = [int(e) for e in os.listdir("/proc") if e.isdigit()]
        except OSError:
            return
        current = set(entries)
        for pid in entries:
            seen = scanned.get(pid)
            if seen == "other":
                continue
            args = cmdline(pid)
            if seen is not None and seen == args:
                continue
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                scanned.setdefault(pid, "other")
                continue
            if exe == self.exe:
                scanned[pid] = args
                self.consider(pid, now)
            else:
                scanned[pid] = "git" if os.path.basename(exe).startswith("git") else "other"
        for pid in [p for p in scanned if p not in current]:
            del scanned[pid]
            self.ended(pid, now)

    def note(self, kind, pid):
        """The kill log, for a look at a failed run: time, kind, pid, parent (the receive-pack)."""
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                ppid = f.read().rsplit(b")", 1)[1].split()[1].decode()
        except OSError:
            ppid = "?"
        with self.log_lock, open(self.lab.work / "kills.log", "a") as log:
            log.write(f"{time.time():.6f} {kind} {pid} {ppid}\n")

    def fire(self, pid, start, kind, fd):
        try:
            st = proc_start(pid)
            if st is None or st[0] in "ZX" or st[1] != start or kind_of(cmdline(pid)) != kind:
                self.missed.add(kind)
                return
            signal.pidfd_send_signal(fd, signal.SIGKILL)
            self.kills.add(kind)
            self.note(kind, pid)
        except OSError:
            self.missed.add(kind)
        finally:
            os.close(fd)


class Watcher(threading.Thread):
    """Keeps a `pushgate deliver --watch` running part of the time: up for a random while,
    then SIGKILLed at that random instant (sometimes SIGTERMed), down for a while."""

    def __init__(self, lab, rng, killer):
        super().__init__(daemon=True)
        self.lab, self.rng, self.killer = lab, rng, killer
        self.stop = threading.Event()
        self.starts = 0
        self.terms = 0
        self.proc = None

    def run(self):
        with open(self.lab.watch_log, "ab") as log:
            while not self.stop.is_set():
                self.proc = subprocess.Popen([str(self.lab.binary), "deliver", "--watch"], env=self.lab.env,
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
                self.starts += 1
                if self.stop.wait(self.rng.uniform(0.3, 4.0)):
                    break
                if self.proc.poll() is None:
                    if self.rng.random() < 0.8:
                        self.proc.send_signal(signal.SIGKILL)
                        self.killer.kills.add("deliver-watch")
                        self.killer.note("deliver-watch", self.proc.pid)
                    else:
                        self.proc.send_signal(signal.SIGTERM)
                        self.terms += 1
                self.proc.wait()
                if self.stop.wait(self.rng.uniform(0.3, 3.0)):
                    break
        self.end()

    def end(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Worker(threading.Thread):
    """--backend postgres: one worker of the fleet, another machine (its own configuration
    and spool, the same database and connectors), running `deliver --watch`. Up for a random
    while, then SIGKILLed (most times), SIGTERMed, or SIGSTOPped for longer than its lease and
    continued (a stalled lease holder: another worker takes its connectors meanwhile, and what
    it was doing must not be recorded when it wakes up); restarted after a random pause."""

    def __init__(self, lab, index, rng, killer):
        super().__init__(daemon=True)
        self.lab, self.index, self.rng, self.killer = lab, index, rng, killer
        self.config, self.spool = lab.worker_configs[index]
        self.log = self.config.parent / "worker.log"
        self.stop = threading.Event()
        self.starts = self.terms = self.stops = self.exits = 0
        self.proc = None

    def run(self):
        env = dict(self.lab.env, PUSHGATE_CONFIG=str(self.config))
        lease = self.lab.args.lease_s
        with open(self.log, "ab") as log:
            while not self.stop.is_set():
                if self.proc is None:
                    self.proc = subprocess.Popen(
                        [str(self.lab.binary), "--config", str(self.config), "deliver", "--watch"], env=env,
                        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
                    self.starts += 1
                if self.stop.wait(self.rng.uniform(0.5, 5.0)):
                    break
                if self.proc.poll() is not None:
                    self.exits += 1  # it stopped by itself (it should not)
                    self.proc = None
                    continue
                r = self.rng.random()
                if r < 0.2:
                    self.proc.send_signal(signal.SIGSTOP)
                    self.stops += 1
                    self.killer.note("worker-sigstop", self.proc.pid)
                    self.stop.wait(self.rng.uniform(lease + 0.5, lease + 2.5))
                    self.proc.send_signal(signal.SIGCONT)
                    continue  # it runs on (fenced off from what it held)
                if r < 0.35:
                    self.proc.send_signal(signal.SIGTERM)
                    self.terms += 1
                    try:
                        self.proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.proc.wait()
                else:
                    self.proc.send_signal(signal.SIGKILL)
                    self.killer.kills.add("worker")
                    self.killer.note("worker", self.proc.pid)
                    self.proc.wait()
                self.proc = None
                if self.stop.wait(self.rng.uniform(0.3, 3.0)):
                    break
        self.end()

    def end(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class DbChaos(threading.Thread):
    """--backend postgres: the database stopped the way a crash stops it (SIGQUIT, what
    `pg_ctl stop -m immediate` sends: no checkpoint, every client cut off) every few seconds,
    and started again (crash recovery) after a while."""

    def __init__(self, lab, rng, gap, down):
        super().__init__(daemon=True)
        self.lab, self.rng, self.gap, self.down = lab, rng, gap, down
        self.stop = threading.Event()
        self.outages = []  # seconds the database was down, each time

    def run(self):
        lab = self.lab
        while not self.stop.wait(self.rng.uniform(*self.gap)):
            with lab.db_lock:
                lab.db_epoch += 1
                lab.db.stop()
            t = time.monotonic()
            say(f"database stopped (immediate), for {len(self.outages) + 1}. time")
            self.stop.wait(self.rng.uniform(*self.down))  # cut short at the end of the chaos
            with lab.db_lock:
                lab.db.start()
                lab.db_epoch += 1
            self.outages.append(time.monotonic() - t)
            say(f"database started again after {self.outages[-1]:.1f}s down")


class Ticker(threading.Thread):
    """A timer-driven `pushgate deliver --once` every so often (as a cron job would run it),
    so that retries come due during the chaos too, and more deliverers get killed."""

    def __init__(self, lab, rng):
        super().__init__(daemon=True)
        self.lab, self.rng = lab, rng
        self.stop = threading.Event()
        self.runs = 0
        self.procs = []

    def run(self):
        with open(self.lab.work / "ticker.log", "ab") as log:
            gap = (0.02, 0.2) if self.lab.args.harsh else (0.2, 1.2)
            while not self.stop.wait(self.rng.uniform(*gap)):
                self.procs = [p for p in self.procs if p.poll() is None]
                self.procs.append(subprocess.Popen([str(self.lab.binary), "deliver", "--once"], env=self.lab.env,
                                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log))
                self.runs += 1
        for p in self.procs:
            p.wait()


# --------------------------------------------------------------------------- receivers

class _Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with self.server.receiver.lock:
            self.server.receiver.conns.add(self.connection)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        with self.server.receiver.lock:
            self.server.receiver.conns.discard(self.connection)

    def log_message(self, *args):
        pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(length)
        return data if len(data) == length else None

    def do_POST(self):
        rec = self.server.receiver
        try:
            body = self.body()
        except (OSError, ValueError):
            body = None
        if body is None:
            self.close_connection = True
            return
        kind = rec.note(self.headers, body)
        try:
            if kind == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if kind == "hang":
                time.sleep(rec.hang)
                code = 503
            else:
                code = int(kind)
            self.send_response(code)
            if code == 429:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            self.close_connection = True


class Receiver:
    """An HTTP endpoint with a behaviour schedule, recording every request."""

    ANSWERS = [("200", 6), ("503", 2), ("408", 1), ("429", 1), ("hang", 1), ("drop", 1)]

    def __init__(self, name, port, rng, hang):
        self.name, self.port, self.rng, self.hang = name, port, rng, hang
        self.lock = threading.Lock()
        self.records = []
        self.deck = []
        self.conns = set()
        self.server = None
        self.healthy = False
        self.downs = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.cycle, daemon=True)

    def note(self, headers, body):
        try:
            event = summarize(json.loads(body))
            malformed = None
        except Exception as e:  # noqa: BLE001 - any bad body is a finding
            event, malformed = None, f"{e}: {body[:200]!r}"
        with self.lock:
            if self.healthy:
                kind = "200"
            else:
                if not self.deck:
                    # The schedule: every answer, in its proportion, in a random order.
                    self.deck = [a for a, w in self.ANSWERS for _ in range(w)]
                    self.rng.shuffle(self.deck)
                kind = self.deck.pop()
            self.records.append({
                "kind": kind,
                "chaos": not self.healthy,
                "delivery": headers.get("X-Pushgate-Delivery"),
                "webhook_id": headers.get("webhook-id"),
                "event_header": headers.get("X-Pushgate-Event"),
                "event": event,
                "malformed": malformed,
            })
        return kind

    def up(self):
        if self.server:
            return
        for _ in range(100):
            try:
                srv = _Server(("127.0.0.1", self.port), _Handler)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"cannot listen on 127.0.0.1:{self.port}")
        srv.receiver = self
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.server = srv

    def down(self):
        srv, self.server = self.server, None
        if srv is None:
            return
        srv.shutdown()
        srv.server_close()
        with self.lock:
            conns = list(self.conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.downs += 1

    def cycle(self):
        """Up for a while, down (connection refused, open connections reset) for a while."""
        self.up()
        while not self.stop.is_set():
            if self.healthy:
                self.up()
                self.stop.wait(0.1)
                continue
            if self.stop.wait(self.rng.uniform(2.0, 7.0)) or self.healthy:
                continue
            self.down()
            self.stop.wait(self.rng.uniform(0.5, 2.5))
            self.up()


# --------------------------------------------------------------------------- pushers

class Budget:
    """The pushes left to start, shared by the pushers."""

    def __init__(self, total):
        self.total = total
        self.started = 0
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            if self.started >= self.total:
                return False
            self.started += 1
            return True

    def progress(self):
        with self.lock:
            return self.started / self.total


class Pusher(threading.Thread):
    def __init__(self, lab, index, rng, budget, stats):
        super().__init__(daemon=True)
        self.lab, self.i, self.rng, self.budget, self.stats = lab, index, rng, budget, stats
        self.env = dict(lab.env, PUSHGATE_USER=f"p{index}")
        self.clones = {repo: lab.clone(index, repo) for repo in REPOS}
        self.counter = 0
        self.tags = {repo: set() for repo in REPOS}
        self.reported = []  # (repo, ref, flag) git said it updated
        self.samples = []
        self.error = None
        self.pace = lab.args.pace

    def git(self, repo, *argv, check=True):
        return self.lab.git(self.clones[repo], *argv, check=check, env=self.env)

    def next(self):
        self.counter += 1
        return self.counter

    def fetch(self, repo, *argv):
        """`git fetch`, again when another pusher deleted a ref between the listing and the
        fetch ("no such remote ref": a race of the harness, not of pushgate)."""
        for attempt in range(5):
            proc = self.git(repo, "fetch", "-q", *argv, "origin", check=False)
            if proc.returncode == 0:
                return
            if "no such remote ref" not in proc.stderr or attempt == 4:
                raise RuntimeError(f"git fetch in {self.clones[repo]} failed ({proc.returncode}): "
                                   f"{proc.stderr.strip()}")
            self.stats.add("harness: fetch raced a ref deletion")

    def commit(self, repo, n):
        c = self.clones[repo]
        for _ in range(n):
            d = c / f"p{self.i}"
            d.mkdir(exist_ok=True)
            with open(d / f"f{self.rng.randrange(6)}.txt", "a") as f:
                f.write(f"{self.rng.getrandbits(64):x}\n")
            self.git(repo, "add", "-A")
            self.git(repo, "commit", "-q", "-m", f"p{self.i} change {self.next()}")

    def push(self, repo, argv):
        """One `git push`: None when the budget is spent, else (ok, reason)."""
        if not self.budget.take():
            return None
        proc = self.git(repo, "push", "--porcelain", *argv, check=False)
        self.stats.add("pushes attempted")
        for line in proc.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and len(parts[0]) == 1 and ":" in parts[1]:
                flag, ref = parts[0], parts[1].split(":", 1)[1]
                if flag in " +-*":
                    self.reported.append((repo, ref, flag))
                    self.stats.add({" ": "git: fast-forward", "+": "git: forced", "-": "git: deleted",
                                    "*": "git: created"}[flag])
                    if ref.startswith("refs/tags/"):
                        (self.tags[repo].discard if flag == "-" else self.tags[repo].add)(ref[len("refs/tags/"):])
        if proc.returncode == 0:
            self.stats.add("pushes landed")
            return True, "ok"
        text = proc.stdout + proc.stderr
        if "is full" in text or "No space left" in text:
            reason = "spool full"
        elif "pre-receive hook declined" in text and "pushgate: " not in proc.stderr:
            reason = "pre-receive killed"
        elif "fetch first" in text or "non-fast-forward" in text:
            reason = "stale (fetch first)"
        elif "lock" in text or "failed to update ref" in text:
            reason = "ref lock lost"
        elif "atomic" in text:
            reason = "atomic push failed"
        else:
            reason = "other"
            if len(self.samples) < 3:
                self.samples.append(text.strip()[-800:])
        self.stats.add(f"rejected: {reason}")
        if reason == "spool full":
            time.sleep(0.5)
        return False, reason

    def checkout_own(self, repo):
        own = f"p{self.i}/own"
        if self.git(repo, "rev-parse", "-q", "--verify", f"refs/heads/{own}", check=False).returncode == 0:
            self.git(repo, "checkout", "-q", own)
        else:
            self.git(repo, "checkout", "-q", "-B", own, "origin/main")
        return own

    def op_own(self, repo):
        own = self.checkout_own(repo)
        self.commit(repo, self.rng.randint(1, 3))
        return self.push(repo, ["origin", own]) is not None

    def op_shared(self, repo):
        self.fetch(repo)
        self.git(repo, "checkout", "-q", "-B", "main", "origin/main")
        self.commit(repo, self.rng.randint(1, 2))
        for _ in range(8):
            result = self.push(repo, ["origin", "main"])
            if result is None:
                return False
            if result[0]:
                self.stats.add("shared: landed")
                return True
            self.stats.add("shared: fetch + rebase")
            self.fetch(repo)
            if self.git(repo, "rebase", "-q", "origin/main", check=False).returncode != 0:
                self.git(repo, "rebase", "--abort", check=False)
                self.git(repo, "checkout", "-q", "-B", "main", "origin/main")
                self.commit(repo, 1)
        return True

    def op_force(self, repo):
        if self.rng.random() < 0.5:
            self.fetch(repo)
        branch = f"p{self.i}/force"
        self.git(repo, "checkout", "-q", "-B", branch, "origin/main")
        self.commit(repo, 1)
        return self.push(repo, ["--force", "origin", branch]) is not None

    def op_multi(self, repo):
        self.fetch(repo, "--prune")
        listed = self.git(repo, "for-each-ref", "--format=%(refname:strip=3)", f"refs/remotes/origin/p{self.i}/").stdout
        mine = [r for r in listed.split() if r.startswith(f"p{self.i}/t")]
        own = self.checkout_own(repo)
        self.commit(repo, self.rng.randint(1, 2))
        specs = [own]
        for _ in range(self.rng.randint(1, 3)):
            specs.append(f"{self.rng.choice(['HEAD', 'HEAD~1'])}:refs/heads/p{self.i}/t{self.next()}")
        for name in self.rng.sample(mine, min(len(mine), self.rng.randint(0, 2))):
            specs.append(f":refs/heads/{name}")
        if self.rng.random() < 0.3:
            tag = f"p{self.i}-m{self.next()}"
            self.git(repo, "tag", tag)
            specs.append(f"refs/tags/{tag}")
        atomic = ["--atomic"] if self.rng.random() < 0.5 else []
        return self.push(repo, atomic + ["origin", *specs]) is not None

    def op_tag(self, repo):
        name = f"p{self.i}-v{self.next()}"
        if self.rng.random() < 0.7:
            self.git(repo, "tag", "-a", "-m", f"release {name}", name)
        else:
            self.git(repo, "tag", name)
        specs = [f"refs/tags/{name}"]
        if self.tags[repo] and self.rng.random() < 0.4:
            specs.append(f":refs/tags/{self.rng.choice(sorted(self.tags[repo]))}")
        return self.push(repo, ["origin", *specs]) is not None

    def run(self):
        ops = [(self.op_own, 25), (self.op_shared, 25), (self.op_force, 15), (self.op_multi, 20), (self.op_tag, 15)]
        if self.lab.args.harsh:
            ops[1] = (self.op_shared, 60)
        try:
            while True:
                op = self.rng.choices([o for o, _ in ops], [w for _, w in ops])[0]
                if not op(self.rng.choice(REPOS)):
                    return
                time.sleep(self.rng.uniform(0, self.pace))
        except Exception as e:  # noqa: BLE001 - reported as a harness failure
            self.error = f"pusher p{self.i}: {e}"


# --------------------------------------------------------------------------- admin commands

class Admin(threading.Thread):
    """Runs the admin commands all along; each must exit 0 with valid JSON."""

    COMMANDS = [("queue status", ["queue", "status", "--json"]), ("queue list", ["queue", "list", "--json"]),
                ("log", ["log", "--json"])]

    def __init__(self, lab, interval):
        super().__init__(daemon=True)
        self.lab, self.interval = lab, interval
        self.stop = threading.Event()
        self.runs = Counter()
        self.failures = []

    def check_once(self, phase):
        for name, argv in self.COMMANDS:
            try:
                before = self.lab.db_state()
                proc = self.lab.pushgate(*argv, timeout=60)
                if proc.returncode != 0:
                    after = self.lab.db_state()
                    # --backend postgres: with the database down (at any instant of the
                    # command), failing and saying so is right.
                    if self.lab.db and "database" in proc.stderr and \
                            (not before[1] or not after[1] or before[0] != after[0]):
                        self.runs.add(f"{name} refused (database down)")
                        continue
                    raise ValueError(f"exit {proc.returncode}: {proc.stderr.strip()[:300]}")
                if name == "log":
                    for line in proc.stdout.splitlines():
                        json.loads(line)
                else:
                    value = json.loads(proc.stdout)
                    if not isinstance(value, list):
                        raise ValueError(f"not a JSON array: {proc.stdout[:200]}")
                self.runs.add(name)
            except (ValueError, subprocess.TimeoutExpired) as e:
                self.runs.add(f"{name} FAILED")
                self.failures.append(f"{name} ({phase}): {e}")

    def run(self):
        while not self.stop.wait(self.interval):
            self.check_once("during the chaos")


# --------------------------------------------------------------------------- the run

def fill_disk(lab):
    """Fill the spool's tmpfs with a filler file; the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with open(lab.filler, "wb") as f:
        try:
            while True:
                written += os.write(f.fileno(), chunk)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
        # The last partial pages too.
        for size in (4096, 512, 1):
            try:
                while True:
                    written += os.write(f.fileno(), chunk[:size])
            except OSError:
                pass
    return written


def spool_state(lab):
    """(pending jobs per connector, dead per connector, files in incoming/, files aside)."""
    pending, dead = {}, {}
    root = lab.spool / "connectors"
    for c in sorted(os.listdir(root)) if root.is_dir() else []:
        for shelf, into in (("queue", pending), ("dead", dead)):
            d = root / c / shelf
            into[c] = len([n for n in os.listdir(d) if n.endswith(".json") and not n.startswith(".")]) \
                if d.is_dir() else 0
    incoming = sorted(os.listdir(lab.spool / "incoming")) if (lab.spool / "incoming").is_dir() else []
    aside = sorted(os.listdir(lab.spool / "aside")) if (lab.spool / "aside").is_dir() else []
    return pending, dead, incoming, aside


def run(args):
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    lab = Lab(args)
    say(f"seed {args.seed}, {args.pushes} pushes by {args.pushers} pushers, binary {lab.binary}, scratch {lab.work}")
    if not lab.full_disk:
        say("WARNING: no full-disk phase (not root, or --no-full-disk)")
    stats = Counter()
    violations = collections.defaultdict(list)
    failed = True
    try:
        lab.setup()
        receivers = {name: Receiver(name, lab.ports[name], random.Random(rng.random()), args.http_timeout + 0.6)
                     for name in HTTP_CONNECTORS}
        for r in receivers.values():
            r.thread.start()
        budget = Budget(args.pushes)
        killer = Killer(lab, random.Random(rng.random()), budget.progress, args.min_kills)
        watcher = Watcher(lab, random.Random(rng.random()), killer)
        admin = Admin(lab, 0.7)
        ticker = Ticker(lab, random.Random(rng.random()))
        pushers = [Pusher(lab, i, random.Random(rng.random()), budget, stats) for i in range(args.pushers)]
        # --backend postgres (drawn after the rest: --backend file's schedule is unchanged).
        workers = [Worker(lab, i, random.Random(rng.random()), killer) for i in range(len(lab.worker_configs))]
        dbchaos = DbChaos(lab, random.Random(rng.random()), args.db_gap, args.db_down) if lab.db else None
        t_chaos = time.monotonic()
        for t in [killer, watcher, ticker, admin, *workers, *([dbchaos] if dbchaos else []), *pushers]:
            t.start()

        # The full-disk phase, part-way through.
        full = {"done": False, "bytes": 0, "seconds": 0.0, "rejected": 0}
        last_report = time.monotonic()
        while any(p.is_alive() for p in pushers):
            time.sleep(0.05)
            if lab.full_disk and not full["done"] and budget.progress() >= 0.4:
                before = stats.get("rejected: spool full")
                start = time.monotonic()
                full["bytes"] = fill_disk(lab)
                say(f"full-disk phase: spool file system filled ({full['bytes'] // 1024} KiB filler)")
                admin.check_once("while the disk is full")
                while time.monotonic() - start < args.full_max and any(p.is_alive() for p in pushers):
                    time.sleep(0.1)
                    if time.monotonic() - start >= args.full_min and \
                            stats.get("rejected: spool full") - before >= args.full_rejects:
                        break
                admin.check_once("while the disk is full")
                lab.filler.unlink()
                full.update(done=True, seconds=time.monotonic() - start,
                            rejected=stats.get("rejected: spool full") - before)
                say(f"full-disk phase over after {full['seconds']:.1f}s: {full['rejected']} pushes rejected")
            if time.monotonic() - last_report > 10:
                last_report = time.monotonic()
                say(f"{budget.started}/{args.pushes} pushes started, {killer.total()} kills, "
                    f"{time.monotonic() - t0:.0f}s")
        t_pushed = time.monotonic()

        # Quiesce: no more chaos, healthy receivers, deliverers until nothing is pending.
        if dbchaos:
            dbchaos.stop.set()
            dbchaos.join()  # the database is up
        ticker.stop.set()
        ticker.join()
        killer.stop.set()
        watcher.stop.set()
        for w in workers:
            w.stop.set()
        killer.join()
        watcher.join()
        for w in workers:
            w.join()
        for r in receivers.values():
            r.healthy = True
            r.up()
        lab.healthy_flag.touch()
        admin.stop.set()
        admin.join()
        say(f"pushes done in {t_pushed - t_chaos:.1f}s; draining")
        deadline = time.monotonic() + args.drain_timeout
        drained = False
        rounds = 0
        with open(lab.work / "drain.log", "ab") as log:
            while time.monotonic() < deadline:
                proc = subprocess.run([str(lab.binary), "deliver", "--once"], env=lab.env, stdout=log, stderr=log,
                                      timeout=120)
                rounds += 1
                if proc.returncode != 0:
                    stats.add("drain: deliver --once failed")
                pending, dead, incoming, aside = spool_state(lab)
                if not any(pending.values()) and not incoming and not outbox_pending(lab):
                    drained = True
                    break
                time.sleep(0.3)
        t_drained = time.monotonic()
        # Let the last deliverers and orphaned scripts finish before looking.
        for _ in range(300):
            if not pushgate_pids(lab) and not recorder_pids(lab):
                break
            time.sleep(0.1)
        else:
            violations["stuck"].append(f"pushgate processes still running: {pushgate_pids(lab)}")
        time.sleep(0.3)
        for r in receivers.values():
            r.stop.set()
        for r in receivers.values():
            r.thread.join(timeout=5)
            r.down()
        admin.check_once("after the drain")
        if not drained:
            violations["drain"].append(f"not drained after {args.drain_timeout}s ({rounds} deliver --once runs)")
        fleet = {"workers": workers, "db": dbchaos}
        figures = check(lab, args, stats, receivers, killer, watcher, admin, pushers, full, violations, fleet)
        wall = time.monotonic() - t0
        report(args, stats, figures, killer, watcher, receivers, admin, full, violations,
               {"setup": t_chaos - t0, "pushes": t_pushed - t_chaos, "drain": t_drained - t_pushed,
                "drain rounds": rounds, "wall": wall, "ticks": ticker.runs}, fleet)
        failed = bool(violations)
        return 1 if violations else 0
    finally:
        for pid, _ in pushgate_pids(lab):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in recorder_pids(lab):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if args.keep or (failed and not args.no_keep_on_failure):
            if lab.db:
                lab.db.stop()
            say(f"kept {lab.work}" + (f" (umount {' '.join(map(str, reversed(lab.mounts)))})"
                                      if lab.mounts else "") + (f", rm {lab.image}" if lab.image else "")
                + (f"; the database's directory {lab.db.dir} (start it: su nobody -s /bin/sh -c "
                   f"'{lab.db.bin}/postgres -D {lab.db.data}')" if lab.db else ""))
        else:
            lab.cleanup()


def outbox_pending(lab):
    """--backend postgres: jobs waiting in the outbox (not dead); -1 when it cannot be read.
    0 with the file backend."""
    if not lab.db:
        return 0
    try:
        return int(lab.db.psql("SELECT count(*) FROM pushgate.jobs WHERE NOT dead"))
    except (RuntimeError, ValueError):
        return -1


def log_lines(lab, needle):
    """How many lines of the deliverers' logs (the watcher's, the timer's, the drain's, the
    workers') contain `needle`."""
    logs = [lab.watch_log, lab.work / "ticker.log", lab.work / "drain.log"]
    logs += [config.parent / "worker.log" for config, _ in lab.worker_configs]
    n = 0
    for path in logs:
        try:
            n += sum(1 for line in path.read_text(errors="replace").splitlines() if needle in line)
        except OSError:
            pass
    return n


def recorder_pids(lab):
    mark = str(lab.work / "recorder.py").encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            args = cmdline(int(entry))
            st = proc_start(int(entry))
            if args and mark in args and st and st[0] not in "ZX":
                found.append(int(entry))
    return found


# --------------------------------------------------------------------------- the checks

def check(lab, args, stats, receivers, killer, watcher, admin, pushers, full, violations, fleet=None):
    def v(kind, text):
        violations[kind].append(text)

    label_of = {str(path): repo for repo, path in lab.server_dirs.items()}

    # What landed, from the reference-transaction hook.
    landed = collections.Counter()
    for repo, log in lab.landed_logs.items():
        for line in log.read_text().splitlines():
            _, _, old, new, ref = line.split(" ", 4)
            if ref.startswith("refs/") and old != new:
                landed[(repo, ref, old, new)] += 1
    landed_refs = collections.Counter((k[0], k[1]) for k in landed.elements())

    # The harness itself: every update git reported is in the hook's log.
    reported = collections.Counter((repo, ref) for p in pushers for repo, ref, _ in p.reported)
    for key, n in reported.items():
        if landed_refs[key] < n:
            v("harness", f"git reported {n} update(s) of {key[1]} in {key[0]}, the reference-transaction "
                         f"log has {landed_refs[key]}")
    for p in pushers:
        if p.error:
            v("harness", p.error)

    # Every delivery, per connector, in the order the receiver took them.
    deliveries = {name: list(r.records) for name, r in receivers.items()}
    deliveries[SCRIPT_CONNECTOR] = []
    if lab.script_log.exists():
        for line in lab.script_log.read_text().splitlines():
            rec = json.loads(line)
            event = rec["event"] if "malformed" not in rec["event"] else None
            deliveries[SCRIPT_CONNECTOR].append({"kind": rec["kind"], "chaos": rec["chaos"], "delivery": rec["delivery"],
                                                 "event": event, "event_id": rec["event_id"],
                                                 "malformed": rec["event"].get("malformed")})

    if args.inject:
        inject(args.inject, deliveries, random.Random(args.seed))

    events = {}           # event id -> summary (first seen)
    accepted = {c: collections.OrderedDict() for c in CONNECTORS}   # event id -> first accepted index
    accepted_count = {c: collections.Counter() for c in CONNECTORS}
    delivery_ids = collections.defaultdict(set)   # (connector, event id) -> delivery ids
    owners = collections.defaultdict(set)         # delivery id -> (connector, event id)
    answers = {c: collections.Counter() for c in CONNECTORS}
    accepted_in_chaos = collections.Counter()
    for c, records in deliveries.items():
        for i, rec in enumerate(records):
            answers[c][rec["kind"]] += 1
            if rec.get("malformed") or rec["event"] is None:
                v("malformed", f"{c}: unreadable body: {rec.get('malformed')}")
                continue
            ev = rec["event"]
            eid = ev["id"]
            if eid in events:
                if (events[eid]["sequence"], events[eid]["changes"], events[eid]["path"]) != \
                        (ev["sequence"], ev["changes"], ev["path"]):
                    v("event changed", f"event {eid} differs between deliveries: {events[eid]} / {ev}")
            else:
                events[eid] = ev
            if c in HTTP_CONNECTORS:
                if rec["delivery"] != rec["webhook_id"]:
                    v("delivery id", f"{c}: X-Pushgate-Delivery {rec['delivery']} != webhook-id {rec['webhook_id']}")
                if rec["event_header"] != "push":
                    v("malformed", f"{c}: X-Pushgate-Event {rec['event_header']!r}")
            elif rec["event_id"] != eid:
                v("malformed", f"{c}: PUSHGATE_EVENT_ID {rec['event_id']} for event {eid}")
            if not rec["delivery"]:
                v("delivery id", f"{c}: event {eid} delivered without a delivery id")
            delivery_ids[(c, eid)].add(rec["delivery"])
            owners[rec["delivery"]].add((c, eid))
            if rec["kind"] == "200" or rec["kind"] == "0":
                accepted_count[c][eid] += 1
                if rec["chaos"]:
                    accepted_in_chaos[c] += 1
                accepted[c].setdefault(eid, i)

    for (c, eid), ids in delivery_ids.items():
        if len(ids) > 1:
            v("delivery id", f"{c}: event {eid} came with {len(ids)} delivery ids: {sorted(ids)}")
    for did, users in owners.items():
        if len(users) > 1:
            v("delivery id", f"delivery id {did} used for {sorted(users)}")

    # Events: each reaches every connector; sequences 1..N, one event each.
    for c in CONNECTORS:
        for eid in events:
            if eid not in accepted[c]:
                ev = events[eid]
                v("undelivered", f"{c} never accepted event {eid} (repo {ev['repo']}, sequence {ev['sequence']})")
    by_seq = collections.defaultdict(set)
    for eid, ev in events.items():
        repo = label_of.get(ev["path"], ev["path"])
        if ev["sequence"] is None:
            v("gap", f"event {eid} of {repo} has no sequence")
            continue
        by_seq[(repo, ev["sequence"])].add(eid)
        if ev["schema"] is None or not str(ev["schema"]).startswith("pushgate.push"):
            v("malformed", f"event {eid}: schema {ev['schema']}")
    for key, ids in by_seq.items():
        if len(ids) > 1:
            v("sequence", f"{key[0]} sequence {key[1]} names {len(ids)} events: {sorted(ids)}")
    seqs_per_repo = {repo: sorted(s for (r, s) in by_seq if r == repo) for repo in REPOS}
    for repo, seqs in seqs_per_repo.items():
        if seqs:
            missing = sorted(set(range(1, seqs[-1] + 1)) - set(seqs))
            if missing:
                v("gap", f"{repo}: sequences missing {missing[:20]}{' ...' if len(missing) > 20 else ''} "
                         f"of 1..{seqs[-1]}")

    # Order: per connector and repository, first deliveries in increasing sequence.
    for c in CONNECTORS:
        last = {}
        for eid in accepted[c]:
            ev = events[eid]
            repo = label_of.get(ev["path"], ev["path"])
            seq = ev["sequence"] or 0
            if repo in last and seq <= last[repo][0]:
                v("order", f"{c}: {repo} sequence {seq} (event {eid}) first delivered after sequence "
                           f"{last[repo][0]} (event {last[repo][1]})")
            if repo not in last or seq > last[repo][0]:
                last[repo] = (seq, eid)

    # Landed updates vs events.
    in_events = collections.defaultdict(set)   # update -> event ids
    for eid, ev in events.items():
        repo = label_of.get(ev["path"], ev["path"])
        for ref, before, after in ev["changes"]:
            in_events[(repo, ref, before, after)].add(eid)
            if (repo, ref, before, after) not in landed:
                v("phantom", f"event {eid} ({repo} sequence {ev['sequence']}) reports {ref} {before[:10]}.."
                             f"{after[:10]}, which never landed")
    for c in CONNECTORS:
        got = set()
        for eid in accepted[c]:
            ev = events[eid]
            repo = label_of.get(ev["path"], ev["path"])
            got.update((repo, ref, b, a) for ref, b, a in ev["changes"])
        for update in landed:
            if update not in got:
                shown = f"{update[0]} {update[1]} {update[2][:10]}..{update[3][:10]}"
                if update in in_events:
                    continue  # an event exists but never reached c: already "undelivered"
                v("lost", f"{c}: landed update {shown} is in no event it received")
    doubles = {u: ids for u, ids in in_events.items() if len(ids) > landed[u]}
    for u, ids in doubles.items():
        text = f"{u[0]} {u[1]} {u[2][:10]}..{u[3][:10]} landed {landed[u]}x, reported by {len(ids)} events"
        (v if args.strict else lambda _k, t: stats.add("double events"))("double event", text)

    # pushgate's own view: its log, its queues, incoming/.
    attempts = []
    proc = lab.pushgate("log", "--json")
    if proc.returncode == 0:
        attempts = [json.loads(line) for line in proc.stdout.splitlines()]
    log_ids = collections.defaultdict(set)
    outcomes = collections.Counter()
    for a in attempts:
        a["connector"] = base_name(a["connector"])
        outcomes[a["outcome"]] += 1
        log_ids[(a["connector"], a["event_id"])].add(a["delivery_id"])
        if a["outcome"] == "delivered" and a["event_id"] not in accepted.get(a["connector"], {}):
            v("log", f"the log says {a['job']} was delivered, its receiver never accepted event {a['event_id']}")
        if a["outcome"] in ("dead", "disabled", "dropped"):
            v("dead", f"{a['job']}: {a['outcome']} ({a.get('error')})")
    for key, ids in log_ids.items():
        if len(ids) > 1 or not ids <= delivery_ids.get(key, ids):
            v("delivery id", f"{key[0]}: event {key[1]}: log delivery ids {sorted(ids)}, received "
                             f"{sorted(delivery_ids.get(key, []))}")
    status = lab.pushgate("queue", "status", "--json")
    try:
        rows = json.loads(status.stdout)
        for row in rows:
            if row["pending"] or row["dead"] or row["disabled"]:
                v("pending", f"queue status: {row}")
        if sorted(base_name(r["connector"]) for r in rows) != sorted(CONNECTORS):
            v("pending", f"queue status lists {[r['connector'] for r in rows]}")
    except (ValueError, KeyError) as e:
        v("admin", f"final queue status --json: {e}: {status.stdout[:200]} {status.stderr[:200]}")
    for argv in (["queue", "list", "--json"], ["queue", "list", "--dead", "--json"]):
        proc = lab.pushgate(*argv)
        if proc.returncode != 0 or proc.stdout.strip() not in ("[]", ""):
            v("pending", f"{' '.join(argv)}: {proc.stdout.strip()[:300]} {proc.stderr.strip()[:200]}")
    pending, dead, incoming, aside = spool_state(lab)
    if incoming:
        v("pending", f"incoming/ still holds {incoming[:10]}")
    if aside:
        v("pending", f"aside/ holds {aside[:10]}")
    for failure in admin.failures:
        v("admin", failure)
    relayed = None
    if lab.db:
        # The fleet: every local job relayed, the outbox empty, each (event, connector)
        # relayed once (the relayed table is keyed by delivery id).
        if any(pending.values()) or any(dead.values()):
            v("pending", f"local queues not relayed: pending {dict(pending)}, dead {dict(dead)}")
        try:
            left = int(lab.db.psql("SELECT count(*) FROM pushgate.jobs"))
            relayed = int(lab.db.psql("SELECT count(*) FROM pushgate.relayed"))
            disabled = lab.db.psql("SELECT name FROM pushgate.connectors WHERE disabled IS NOT NULL")
            if left:
                v("pending", f"the outbox still holds {left} job(s)")
            if disabled:
                v("pending", f"disabled in the outbox: {disabled}")
            if relayed != len(events) * len(CONNECTORS):
                v("relay", f"{relayed} delivery ids relayed, for {len(events)} events x {len(CONNECTORS)} connectors")
        except (RuntimeError, ValueError) as e:
            v("harness", f"cannot read the outbox: {e}")
        for config, spool in lab.worker_configs:
            incoming = spool / "incoming"
            if incoming.is_dir() and os.listdir(incoming):
                v("pending", f"worker {config.parent.name}: incoming/ holds {os.listdir(incoming)[:5]}")

    # The chaos itself: did this run do what it claims?
    kills = killer.kills.snapshot()
    if stats.get("pushes attempted") < args.pushes:
        v("chaos", f"only {stats.get('pushes attempted')} of {args.pushes} pushes ran")
    if killer.total() < args.min_kills:
        v("chaos", f"only {killer.total()} kills of post-receives and deliverers (at least {args.min_kills} wanted)")
    for kind in ("post-receive", "deliver-once", "deliver-watch"):
        if not kills[kind]:
            v("chaos", f"no {kind} was killed")
    if lab.full_disk and not full["rejected"]:
        v("chaos", "the full-disk phase rejected no push")
    for kind in ("200", "503", "408", "429", "hang", "drop"):
        if not any(answers[c][kind] for c in HTTP_CONNECTORS):
            v("chaos", f"no receiver answered {kind}")
    for c in HTTP_CONNECTORS:
        if not receivers[c].downs:
            v("chaos", f"{c} never went down")
    if not answers[SCRIPT_CONNECTOR]["75"]:
        v("chaos", "the script never exited 75")
    if lab.db and fleet:
        if not kills["worker"]:
            v("chaos", "no worker was killed")
        if not any(w.stops for w in fleet["workers"]):
            v("chaos", "no worker was stopped past its lease")
        if len(fleet["db"].outages) < args.db_stops:
            v("chaos", f"the database was stopped {len(fleet['db'].outages)} time(s), at least {args.db_stops} wanted")

    return {
        "landed updates": sum(landed.values()),
        "landed by type": collections.Counter(
            "create" if k[2] == ZERO else "delete" if k[3] == ZERO else "update" for k in landed.elements()),
        "events": len(events),
        "events per repo": {repo: len(seqs) for repo, seqs in seqs_per_repo.items()},
        "answers": answers,
        "accepted": {c: sum(accepted_count[c].values()) for c in CONNECTORS},
        "accepted in chaos": accepted_in_chaos,
        "duplicates": {c: sum(n - 1 for n in accepted_count[c].values()) for c in CONNECTORS},
        "log outcomes": outcomes,
        "samples": [s for p in pushers for s in p.samples],
        "relayed": relayed,
        "lease lost": log_lines(lab, "lease lost"),
        "db errors": log_lines(lab, "database"),
    }


def inject(fault, deliveries, rng):
    """Damage what the receivers got, to show that the checks catch it (--inject)."""
    taken = [r for r in deliveries["web1"] if r["event"] and r["kind"] == "200"]
    if fault == "lose":  # an event that no connector ever got: its updates are lost, its sequence a gap
        eid = rng.choice(taken)["event"]["id"]
        for c in deliveries:
            deliveries[c] = [r for r in deliveries[c] if not (r["event"] and r["event"]["id"] == eid)]
    elif fault == "reorder":  # two first deliveries of a repository swapped
        repo = taken[0]["event"]["path"]
        i, j = [deliveries["web1"].index(r) for r in taken if r["event"]["path"] == repo][:2]
        deliveries["web1"][i], deliveries["web1"][j] = deliveries["web1"][j], deliveries["web1"][i]
    elif fault == "delivery-id":  # a retry under another delivery id
        deliveries["web1"].append(dict(taken[0], delivery="00000000-0000-0000-0000-000000000000",
                                       webhook_id="00000000-0000-0000-0000-000000000000"))
    say(f"injected fault: {fault}")


def report(args, stats, figures, killer, watcher, receivers, admin, full, violations, times, fleet=None):
    s = stats.snapshot()
    print()
    print("=== pushgate chaos run" + (" (quick)" if args.quick else "") + f", seed {args.seed}, backend {args.backend}")
    rejected = {k[len("rejected: "):]: n for k, n in sorted(s.items()) if k.startswith("rejected: ")}
    print(f"pushes      {s['pushes attempted']} attempted by {args.pushers} pushers, {s['pushes landed']} landed, "
          f"{sum(rejected.values())} rejected ({', '.join(f'{k} {n}' for k, n in rejected.items()) or '-'}); "
          f"shared main: {s['shared: landed']} landed, {s['shared: fetch + rebase']} fetch + rebase"
          + (f"; {s['harness: fetch raced a ref deletion']} fetch(es) raced a ref deletion, run again"
             if s['harness: fetch raced a ref deletion'] else ""))
    git = {k[len("git: "):]: n for k, n in sorted(s.items()) if k.startswith("git: ")}
    by_type = figures["landed by type"]
    print(f"ref updates {figures['landed updates']} landed (reference-transaction: "
          f"{', '.join(f'{k} {by_type[k]}' for k in sorted(by_type))}; git push said: "
          f"{', '.join(f'{k} {n}' for k, n in git.items())})")
    print(f"events      {figures['events']} ({', '.join(f'{r} {n}' for r, n in figures['events per repo'].items())})"
          f", {s['double events']} update(s) reported by two events")
    kills = killer.kills.snapshot()
    missed = killer.missed.snapshot()
    seen = killer.seen.snapshot()
    print(f"kills       ({killer.how}) {killer.total()} SIGKILLs of post-receives and deliverers, {kills['pre-receive']} of "
          f"pre-receives: " + ", ".join(
        f"{k} {kills[k]} (of {seen[k] if k != 'deliver-watch' else watcher.starts} seen, {missed[k]} gone first)"
        for k in KILLABLE) + f"; watch SIGTERMed {watcher.terms}x; {times['ticks']} timer-driven deliver --once")
    if fleet and fleet["db"]:
        workers, outages = fleet["workers"], fleet["db"].outages
        print(f"fleet       {len(workers)} workers (lease {args.lease}): {sum(w.starts for w in workers)} starts, "
              f"{kills['worker']} SIGKILLs, {sum(w.terms for w in workers)} SIGTERMs, {sum(w.stops for w in workers)} "
              f"SIGSTOPs past the lease (then SIGCONT), {sum(w.exits for w in workers)} exits of their own; "
              f"'lease lost' said {figures['lease lost']}x")
        print(f"database    stopped (immediate) {len(outages)}x, down {sum(outages):.1f}s in all "
              f"({', '.join(f'{o:.1f}' for o in outages)} s); deliverers said 'database' {figures['db errors']}x; "
              f"{figures['relayed']} delivery ids relayed")
    lives = {k: sorted(v) for k, v in killer.lifetimes.items()}
    print("lifetimes   " + ", ".join(f"{k} median {1000 * v[len(v) // 2]:.1f} ms, p90 {1000 * v[int(0.9 * (len(v) - 1))]:.1f} ms"
                                      for k, v in lives.items()))
    for c in CONNECTORS:
        a = figures["answers"][c]
        down = f", down {receivers[c].downs}x" if c in receivers else ""
        print(f"{c:<11} {sum(a.values())} requests ({', '.join(f'{k} {n}' for k, n in sorted(a.items()))}{down}), "
              f"{figures['accepted'][c]} accepted ({figures['accepted in chaos'][c]} before the drain), "
              f"{figures['duplicates'][c]} duplicates")
    lo = figures["log outcomes"]
    print(f"pushgate log {sum(lo.values())} attempts ({', '.join(f'{k} {n}' for k, n in sorted(lo.items()))})")
    if full["done"]:
        print(f"full disk   {full['seconds']:.1f}s, {full['bytes'] // 1024} KiB filler, {full['rejected']} pushes "
              f"rejected")
    runs = admin.runs.snapshot()
    print(f"admin       {', '.join(f'{k} {n}' for k, n in sorted(runs.items()))}")
    print(f"time        {times['wall']:.1f}s wall: setup {times['setup']:.1f}s, pushes {times['pushes']:.1f}s, "
          f"drain {times['drain']:.1f}s ({times['drain rounds']} deliver --once)")
    for sample in figures["samples"]:
        print(f"unexplained rejection: {sample}")
    if fleet and fleet["db"]:
        print("note: a `queue`/`log` command that failed saying 'database' while the database was down is counted "
              "as 'refused (database down)', not as a failure")
    total = sum(len(v) for v in violations.values())
    print(f"violations  {total}" + (": " + ", ".join(f"{k} {len(v)}" for k, v in sorted(violations.items()))
                                    if total else ""))
    for kind, items in sorted(violations.items()):
        for text in items[:15]:
            print(f"  VIOLATION {kind}: {text}")
        if len(items) > 15:
            print(f"  ... {len(items) - 15} more {kind}")
    print("RESULT: " + ("FAIL" if total else "PASS"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pushes", type=int, default=None, help="git pushes to run (default 300; --quick 60)")
    p.add_argument("--pushers", type=int, default=4, help="concurrent pushers (default 4)")
    p.add_argument("--min-kills", type=int, default=None, help="kills the run must reach (default 100; --quick 30)")
    p.add_argument("--quick", action="store_true", help="the CI run: 60 pushes, >= 30 kills, under 2 minutes")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="keep the scratch dir (and its mounts) for a look")
    p.add_argument("--no-keep-on-failure", action="store_true",
                   help="remove the scratch dir even after a violation (kept by default, with its logs)")
    p.add_argument("--binary", default=os.environ.get("PUSHGATE_BIN", str(ROOT / "target" / "release" / "pushgate")))
    p.add_argument("--pace", type=float, default=1.5, help="each pusher waits up to this long between pushes (s)")
    p.add_argument("--http-timeout", type=float, default=1.0, help="the http connectors' timeout, seconds")
    p.add_argument("--spool-size", default="8m", help="the spool's file system (default 8m)")
    p.add_argument("--spool-fs", choices=["tmpfs", "ext4"], default="tmpfs",
                   help="the spool on a tmpfs (default), or on a small ext4 on a loop device over a file in "
                        "/var/tmp (real fsyncs: the windows between a spool write and the next are ms, not us)")
    p.add_argument("--drain-timeout", type=float, default=None, help="seconds (default 90; --quick 45)")
    p.add_argument("--strict", action="store_true",
                   help="a landed update reported by two events (a killed pre-receive's record resolved from "
                        "refs that a later push moved the same way) is a violation too")
    p.add_argument("--harsh", action="store_true",
                   help="more of everything: kills at every chance (pre-receives 30%%), a deliverer every "
                        "20-200 ms, most pushes to the shared main, no pause between pushes")
    p.add_argument("--inject", choices=["lose", "reorder", "delivery-id"],
                   help="damage the receivers' records before the checks, to see them fail")
    p.add_argument("--backend", choices=["file", "postgres"], default="file",
                   help="the spool's backend (default file); postgres: a PostgreSQL the script starts, the "
                        "deliverers relay into its outbox, --workers more workers, the database stopped and "
                        "started again now and then")
    p.add_argument("--workers", type=int, default=3, help="--backend postgres: deliver --watch workers on other "
                                                          "'machines' (default 3)")
    p.add_argument("--lease", default="3s", help="--backend postgres: [spool] lease (default 3s)")
    p.add_argument("--db-stops", type=int, default=None,
                   help="--backend postgres: outages the run must have (default 2; 3 without --quick)")
    p.add_argument("--no-tmpfs", action="store_true", help="scratch dir on the normal temp dir")
    p.add_argument("--no-full-disk", action="store_true", help="skip the full-disk phase (no root needed)")
    args = p.parse_args()
    args.pushes = args.pushes or (60 if args.quick else 300)
    args.min_kills = args.min_kills if args.min_kills is not None else (30 if args.quick else 100)
    args.drain_timeout = args.drain_timeout or (45 if args.quick else 90)
    args.seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    if args.harsh and "--pace" not in sys.argv:
        args.pace = 0.05
    args.full_min, args.full_max, args.full_rejects = (2.0, 6.0, 2) if args.quick else (4.0, 12.0, 5)
    if not args.lease.endswith("s") or not args.lease[:-1].replace(".", "", 1).isdigit():
        sys.exit("chaos: --lease takes seconds, e.g. 3s")
    args.lease_s = float(args.lease[:-1])
    args.db_stops = args.db_stops if args.db_stops is not None else (2 if args.quick else 3)
    # Between outages, and how long each lasts (seconds).
    args.db_gap, args.db_down = ((3.0, 6.0) if args.quick else (5.0, 12.0)), (0.5, 3.0)
    if args.backend == "file":
        args.workers = 0
    if not Path(args.binary).is_file():
        sys.exit(f"chaos: no pushgate binary at {args.binary} (cargo build --release, or --binary PATH)")
    if os.geteuid() != 0 and not args.no_full_disk:
        sys.exit("chaos: run as root (the full-disk phase mounts a small tmpfs), or pass --no-full-disk")
    if shutil.which("flock") is None:
        sys.exit("chaos: needs flock(1) (util-linux) for the reference-transaction hook")
    sys.exit(run(args))


if __name__ == "__main__":
    main()
