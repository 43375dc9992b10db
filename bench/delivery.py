#!/usr/bin/env python3
"""Delivery benchmark for pushgate: (a) how fast the deliverer drains a backlog into a local
keep-alive HTTP endpoint, and whether that rate holds as the backlog grows; (b) what spooling
costs the pusher in post-receive.

(a) Throughput vs backlog. The events are pushgate's own: the script runs the hooks by hand,
    as git runs them for a 1-commit push (`pushgate pre-receive` then `pushgate
    post-receive`, the same `<old> <new> refs/heads/main` line on stdin, the same parent
    process: a `sh` loop), into a spool whose watch.lock this script holds, so post-receive
    takes it for a running `deliver --watch` and starts no deliverer. Two loops run at once,
    each into its own spool, in batches; after each batch the events are moved (renamed,
    unchanged) into one pool, so no hook ever lists a huge incoming/. From the pool, for each
    backlog size N (default 1,000, 10,000 and 100,000): a spool with N events in incoming/,
    and a copy of it fanned out into the connector's queue by a `deliver --once` that dies
    before its first send (PUSHGATE_CRASH_AT=deliver:before-send): N queued jobs. Each round
    times one `pushgate deliver --once` draining a fresh copy (cp -a, untimed) of each spool,
    on the scratch tmpfs, into the sink: "queued" (sending only) and "incoming" (fan-out +
    send). Goals: >= 2,000 events/s, and flat: the slowest size within 20% of the fastest.
    Making the events costs ~10 ms of CPU per hook pair (100,000: ~17 CPU-minutes); with
    `--by-hand N` only the first N are made by the hooks and the rest are byte-for-byte
    copies of them under the numbers the hooks would have given next (the same event ids,
    which the deliverer does not look at: jobs are named by number). Said in the output.

(b) Post-receive cost. A 1-commit push into a server with ~10,000 commits of history, fresh
    copy per push: no hooks; pushgate without extensions; pushgate with one `post` http
    extension (pre-receive records, post-receive confirms and starts a detached deliverer),
    spool on tmpfs and on disk; and the same three with pushgate's post-receive alone
    installed (no pre-receive). After each push (untimed) the script waits until the sink got
    the event and the detached deliverer has exited (this script is the child subreaper of
    what it starts). Goal: push with the post extension / push without hooks <= 1.15.

The sink is a threaded HTTP/1.1 server with keep-alive in a child process of this script,
on 127.0.0.1: it reads each request (Content-Length or chunked body) and answers 204 on the
same connection. It counts requests, connections, and the time spent on requests ("sink
busy", to show it is not the bottleneck).

A report, not a test: it never fails on a missed goal. Standard library only; local files
and 127.0.0.1 only.
"""

import argparse
import fcntl
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from common import (RULES_CONFIG, Bench, Case, add_common_options, become_subreaper, build_server, children,
                    commit_stream, finish_common_options, fresh_copy, goal, in_scratch, interleaved, load_line, med,
                    paired, print_failures, project_files, reap_children, timed, timed_push, tree_size,
                    variant_table)

RATE_GOAL = 2000.0      # events/s to the keep-alive sink, spool on tmpfs, (a)
FLAT_GOAL = 0.20        # the slowest backlog size within 20% of the fastest, (a)
RATIO_GOAL = 1.15       # post-receive with a post extension vs no hooks, (b)

POST_EXTENSION = """
[spool]
dir = "{spool}"
retry = ["5s", "5m"]

[[extension]]
name = "sink"
type = "http"
phase = "post"
url = "{url}"
timeout = "10s"
"""


# --------------------------------------------------------------------------- the endpoint

class Sink:
    """A threaded HTTP/1.1 endpoint on 127.0.0.1 with keep-alive: one thread per connection
    reads requests (headers, then a Content-Length or chunked body) and answers each with a
    204 on the same connection, until the client closes it. Served from a child process (in
    this process, the GIL and the thread that waits for the timed command slow it down).
    Counts requests, connections and the time spent on requests, in shared memory, and
    when (time.monotonic(), the same clock in every process) the first request after the
    last `reset_first()` was read whole (fleet.py's latency)."""

    RESPONSE = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
    CLOSE = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    def __init__(self, port: int = 0):
        ctx = multiprocessing.get_context("fork")
        self._count = ctx.Value("q", 0)
        self._conns = ctx.Value("q", 0)
        self._busy = ctx.Value("d", 0.0)
        self._first = ctx.Value("d", 0.0)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        self.process = ctx.Process(target=Sink._serve, args=(listener, self._count, self._conns, self._busy,
                                                                     self._first),
                                   daemon=True)
        self.process.start()
        listener.close()

    @staticmethod
    def _serve(listener, count, conns, busy, first):
        def handle(conn):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""

            def more():
                chunk = conn.recv(65536)
                if not chunk:
                    raise EOFError
                return chunk

            with conn:
                try:
                    while True:
                        while b"\r\n\r\n" not in buf:
                            buf += more()
                        t0 = time.perf_counter()
                        head, buf = buf.split(b"\r\n\r\n", 1)
                        length, chunked, close = 0, False, False
                        for line in head.split(b"\r\n")[1:]:
                            name, _, value = line.partition(b":")
                            name, value = name.strip().lower(), value.strip().lower()
                            if name == b"content-length":
                                length = int(value)
                            elif name == b"transfer-encoding" and b"chunked" in value:
                                chunked = True
                            elif name == b"connection" and value == b"close":
                                close = True
                        if chunked:
                            while True:
                                while b"\r\n" not in buf:
                                    buf += more()
                                size_line, buf = buf.split(b"\r\n", 1)
                                size = int(size_line.split(b";")[0], 16)
                                while len(buf) < size + 2:
                                    buf += more()
                                buf = buf[size + 2:]
                                if size == 0:
                                    break
                        else:
                            while len(buf) < length:
                                buf += more()
                            buf = buf[length:]
                        with first.get_lock():
                            if not first.value:
                                first.value = time.monotonic()
                        conn.sendall(Sink.CLOSE if close else Sink.RESPONSE)
                        with count.get_lock():
                            count.value += 1
                        with busy.get_lock():
                            busy.value += time.perf_counter() - t0
                        if close:
                            return
                except (EOFError, ConnectionError):
                    return

        while True:
            conn, _ = listener.accept()
            with conns.get_lock():
                conns.value += 1
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    @property
    def count(self) -> int:
        return self._count.value

    @property
    def connections(self) -> int:
        return self._conns.value

    @property
    def busy(self) -> float:
        return self._busy.value

    @property
    def first(self) -> float:
        """time.monotonic() when the first request since `reset_first()` was read (0: none yet)."""
        return self._first.value

    def reset_first(self):
        with self._first.get_lock():
            self._first.value = 0.0

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count >= count:
                return True
            time.sleep(0.002)
        return self.count >= count

    def stop(self):
        self.process.terminate()
        self.process.join()


# --------------------------------------------------------------------------- spool helpers

def queued_jobs(spool: Path) -> int:
    queue = spool / "connectors" / "sink" / "queue"
    return sum(1 for f in os.scandir(queue) if f.name.endswith(".json")) if queue.is_dir() else 0


def incoming_events(spool: Path) -> int:
    incoming = spool / "incoming"
    return sum(1 for f in os.scandir(incoming) if f.name.endswith(".event")) if incoming.is_dir() else 0


def write_config(b: Bench, name: str, spool: Path | None, url: str) -> Path:
    path = b.work / f"{name}.toml"
    text = RULES_CONFIG.format(audit=b.work / f"audit-{name}.jsonl")
    if spool is not None:
        text += POST_EXTENSION.format(spool=spool, url=url)
    path.write_text(text)
    b.check_config(path)
    return path


def make_spool_dirs(spool: Path):
    for sub in ("incoming", "connectors", "log"):
        (spool / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    spool.chmod(0o700)


# --------------------------------------------------------------------------- fixtures

def build(b: Bench, sink: Sink, disk: Path):
    a = b.args
    w = b.work
    rng = random.Random(1234)
    files = project_files()
    t0 = time.perf_counter()
    server = w / "server.git"
    history = build_server(b, server, a.history, a.tags, rng, files)
    tip = history[-1]

    # The client: `one`, a new commit on top of main (the 1-commit push of (b), and the
    # push whose hooks (a) runs by hand).
    client = w / "client.git"
    shutil.copytree(server, client, symlinks=True)
    last = 1_600_000_000 + a.history * 600
    s1, _ = commit_stream("refs/heads/one", 100_000, 1, tip, files, rng, last, "src/feature_one",
                          allow_deploy=False)
    b.run("fast-import", "--quiet", cwd=client, input=s1)
    b.run("repack", "-a", "-d", "-q", cwd=client)
    one = b.run("rev-parse", "refs/heads/one", cwd=client).strip()

    hooked = w / "server-hooked.git"
    shutil.copytree(server, hooked, symlinks=True)
    b.install(hooked)
    b.run("config", "receive.advertisePushOptions", "true", cwd=server)
    post_only = w / "server-post-receive.git"
    shutil.copytree(hooked, post_only, symlinks=True)
    (post_only / "hooks" / "pre-receive").unlink()

    configs = {
        "rules": write_config(b, "rules", None, sink.url),
        "post-tmpfs": write_config(b, "post-tmpfs", w / "spool-push", sink.url),
        "post-disk": write_config(b, "post-disk", disk / "spool-push", sink.url),
        "drain-tmpfs": write_config(b, "drain-tmpfs", w / "spool-slot", sink.url),
        "drain-disk": write_config(b, "drain-disk", disk / "spool-slot", sink.url),
    }
    print(f"fixtures: {len(history)} commits, server {tree_size(server) / 1e6:.1f} MB, "
          f"built in {time.perf_counter() - t0:.1f} s", flush=True)
    templates = {"plain": server, "full": hooked, "post": post_only}
    spools = fill_spools(b, sink, server, client, tip, one) if a.only != "b" else {}
    return templates, client, one, configs, spools


def fill_spools(b: Bench, sink: Sink, server: Path, client: Path, tip: str, one: str) -> dict:
    """(a)'s spools: `pushgate pre-receive` + `pushgate post-receive` run by hand for the
    1-commit push tip -> one of refs/heads/main, max(sizes) times; then one spool per size
    with that many events in incoming/, and one with them fanned out into the queue."""
    a = b.args
    w = b.work
    t0 = time.perf_counter()
    # A server holding `one`'s objects (pushed under a side ref, which is then deleted: the
    # hooks see main at tip and a new commit on top, as in a real push).
    fill_repo = w / "fill.git"
    shutil.copytree(server, fill_repo, symlinks=True)
    b.run("push", "-q", str(fill_repo), "refs/heads/one:refs/heads/fill-side", cwd=client)
    b.run("update-ref", "-d", "refs/heads/fill-side", cwd=fill_repo)
    stdin = w / "fill-stdin"
    stdin.write_text(f"{tip} {one} refs/heads/main\n")
    pool = w / "events-pool"
    pool.mkdir()
    total = min(max(a.sizes), a.by_hand or max(a.sizes))
    workers = []
    for k in range(a.fill_workers):
        spool = w / f"fill-spool-{k}"
        make_spool_dirs(spool)
        lock = open(spool / "watch.lock", "w")
        fcntl.flock(lock, fcntl.LOCK_EX)  # post-receive: "a deliver --watch runs", so it starts none
        config = write_config(b, f"fill-{k}", spool, sink.url)
        workers.append((spool, config, lock))
    loop = ('i=0; while [ "$i" -lt "$1" ]; do "$PG" pre-receive <"$IN" >/dev/null || exit 1; '
            '"$PG" post-receive <"$IN" >/dev/null || exit 2; i=$((i+1)); done')
    made, collisions, batches = 0, 0, 0
    last_report = time.perf_counter()
    while made < total:
        want = total - made
        per = max(1, min(a.fill_batch, -(-want // len(workers))))
        procs = []
        try:
            for spool, config, _lock in workers:
                env = dict(b.env, PUSHGATE_CONFIG=str(config), PG=str(a.pushgate), IN=str(stdin), GIT_DIR=".")
                procs.append(subprocess.Popen(["sh", "-c", loop, "fill", str(per)], cwd=fill_repo, env=env,
                                              stderr=subprocess.PIPE))
            for proc in procs:
                _, err = proc.communicate()
                if proc.returncode != 0:
                    raise SystemExit(f"bench: filling the spool failed (exit {proc.returncode}):\n"
                                     f"{err.decode(errors='replace')}")
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        # Move the batch's events (pushgate's files, unchanged) into the pool; two workers'
        # clocks may give the same number: the second such event is dropped, and made again.
        for spool, _config, _lock in workers:
            incoming = spool / "incoming"
            for entry in sorted(os.scandir(incoming), key=lambda e: e.name):
                if not entry.name.endswith(".event"):
                    if entry.name.endswith(".record"):
                        raise SystemExit(f"bench: an unconfirmed record was left in {incoming}: {entry.name}")
                    continue
                if made >= total:
                    os.unlink(entry.path)
                    continue
                try:
                    os.link(entry.path, pool / entry.name)
                    made += 1
                except FileExistsError:
                    collisions += 1
                os.unlink(entry.path)
        batches += 1
        if time.perf_counter() - last_report > 30:
            last_report = time.perf_counter()
            print(f"  filling: {made}/{total} events ({time.perf_counter() - t0:.0f} s)", flush=True)
    for _spool, _config, lock in workers:
        lock.close()
    if sink.count:
        raise SystemExit(f"bench: the sink got {sink.count} request(s) while the spool was being filled")
    names = sorted(os.listdir(pool))
    fill_s = time.perf_counter() - t0
    print(f"spool: {len(names)} events from {len(names)} pre-/post-receive runs by hand "
          f"({a.fill_workers} loops, {batches} batches, {collisions} same-number event(s) redone), "
          f"{fill_s:.1f} s: {fill_s * 1000 / len(names):.2f} ms per hook pair", flush=True)
    if len(names) < max(a.sizes):
        # --by-hand N: the rest are copies of those events, byte for byte (the same event ids,
        # which the deliverer does not look at: jobs are named by number), under the numbers
        # the hooks would have given next.
        made_by_hand = len(names)
        number = int(names[-1].split(".")[0])
        for i in range(max(a.sizes) - made_by_hand):
            number += 1
            name = f"{number:020}.event"
            shutil.copyfile(pool / names[i % made_by_hand], pool / name)
            names.append(name)
        print(f"spool: {len(names) - made_by_hand} more events copied from those {made_by_hand} "
              f"(--by-hand {a.by_hand}), numbered after them", flush=True)

    # One spool per size: the first N events (hard links: the deliverer only reads and
    # removes them, and every timed run drains a cp -a copy anyway).
    t1 = time.perf_counter()
    spools = {}
    for n in sorted(a.sizes):
        incoming = w / f"spool-incoming-{n}"
        make_spool_dirs(incoming)
        for name in names[:n]:
            os.link(pool / name, incoming / "incoming" / name)
        (incoming / "number").write_text(str(int(names[n - 1].split(".")[0])))
        queued = w / f"spool-queued-{n}"
        subprocess.run(["cp", "-a", str(incoming), str(queued)], check=True)
        queued_config = write_config(b, f"queued-{n}", queued, sink.url)
        env = dict(b.env, PUSHGATE_CRASH_AT="deliver:before-send")
        fan = subprocess.run([str(a.pushgate), "--config", str(queued_config), "deliver", "--once"], env=env,
                             capture_output=True)
        if queued_jobs(queued) != n or incoming_events(queued):
            raise SystemExit(f"bench: expected {n} queued jobs in {queued}, found {queued_jobs(queued)} "
                             f"(and {incoming_events(queued)} events left in incoming/); deliver said: "
                             f"{fan.stderr.decode(errors='replace')[:500]}")
        spools[n] = {"incoming": incoming, "queued": queued}
    if sink.count:
        raise SystemExit(f"bench: the sink got {sink.count} request(s) while the queues were being filled")
    big = max(a.sizes)
    print(f"spools: {', '.join(str(n) for n in sorted(a.sizes))} events; the {big}-event queue is "
          f"{tree_size(spools[big]['queued']) / 1e6:.1f} MB; made in {time.perf_counter() - t1:.1f} s", flush=True)
    return spools


# --------------------------------------------------------------------------- (b) post-receive

# (key, label, hooks installed, config, spool): "full" = pushgate's pre- and post-receive,
# "post" = its post-receive alone (what spooling costs, without the pre-receive's decision).
PUSH_VARIANTS = [
    ("plain", "no hooks", None, None, None),
    ("rules", "pushgate (no extensions)", "full", "rules", None),
    ("full-tmpfs", "pushgate + post http (spool tmpfs)", "full", "post-tmpfs", "tmpfs"),
    ("full-disk", "pushgate + post http (spool disk)", "full", "post-disk", "disk"),
    ("post-none", "post-receive only (no extensions)", "post", "rules", None),
    ("post-tmpfs", "post-receive only + post (tmpfs)", "post", "post-tmpfs", "tmpfs"),
    ("post-disk", "post-receive only + post (disk)", "post", "post-disk", "disk"),
]


def push_cases(b: Bench, sink: Sink, templates, client, one, configs, keep: set):
    slot = b.work / "slot.git"
    out = []
    for key, _label, hooks, config, spool_on in PUSH_VARIANTS:
        template = templates[hooks or "plain"]
        env = dict(b.env, PUSHGATE_CONFIG=str(configs[config or "rules"]))
        spool = {"tmpfs": b.work, "disk": b.args.disk}.get(spool_on)
        spool = spool / "spool-push" if spool else None
        expected = {}

        def prepare(template=template):
            fresh_copy(template, slot)
            expected["count"] = sink.count + 1

        def run(env=env):
            return timed_push(b, client, slot, "refs/heads/one:refs/heads/main", env=env)

        def verify(spool=spool):
            if b.run("rev-parse", "refs/heads/main", cwd=slot).strip() != one:
                return False
            if spool is not None and not sink.wait_for(expected["count"], 15.0):
                return False
            # The detached deliverer (re-parented to us): wait (untimed) until it has exited,
            # so that it never runs during the next timed push.
            _n, _cpu, done = reap_children(15.0, exclude=keep)
            return done and (spool is None or queued_jobs(spool) == 0)

        out.append(Case("1 commit -> main", key, run, prepare=prepare, verify=verify))
    return out


def push_report(results, a):
    scenario = "1 commit -> main"
    print(f"\n(b) post-receive cost, 1 commit -> main, medians of {a.rounds} rounds "
          f"(ratio and added: against no hooks):")
    without = {key: "rules" if hooks == "full" else "post-none" for key, _l, hooks, _c, spool in PUSH_VARIANTS if spool}
    variant_table(results, scenario, [(k, label) for k, label, *_ in PUSH_VARIANTS], "plain", reference=without,
                  reference_label="vs same hooks, no ext")
    plain = results[(scenario, "plain")]
    print()
    for key, label, hooks, _config, spool in PUSH_VARIANTS:
        if spool is None:
            continue
        mine = results[(scenario, key)]
        without = results[(scenario, "rules" if hooks == "full" else "post-none")]
        if not mine["wall"] or not plain["wall"]:
            print(f"{label}: no figures (pushes failed)  goal <= {RATIO_GOAL:.2f}: FAIL")
            continue
        ratio = med(mine["wall"]) / med(plain["wall"])
        cpu_ratio = med(mine["cpu"]) / med(plain["cpu"])
        spooling = med(paired(mine["wall"], without["wall"])) if without["wall"] else float("nan")
        print(f"{label}: ratio {ratio:.2f} (CPU {cpu_ratio:.2f}); spooling adds {spooling:+.1f} ms over the "
              f"same hooks without extensions  goal <= {RATIO_GOAL:.2f}: {goal(ratio <= RATIO_GOAL)}"
              f" (by CPU: {goal(cpu_ratio <= RATIO_GOAL)})")


# --------------------------------------------------------------------------- (a) throughput

def drain_variants(a):
    """(key, label, spool kind, config) for every size."""
    out = []
    for n in sorted(a.sizes):
        out.append((f"queued-{n}", f"{n} queued jobs", n, "queued", "drain-tmpfs"))
        out.append((f"incoming-{n}", f"{n} incoming events", n, "incoming", "drain-tmpfs"))
        if a.disk_too and n <= 10_000:
            out.append((f"queued-disk-{n}", f"{n} queued jobs, spool on disk", n, "queued", "drain-disk"))
    return out


def drain_cases(b: Bench, sink: Sink, configs, spools, stats: dict):
    a = b.args
    out = []
    for key, _label, n, kind, config in drain_variants(a):
        slot = (a.disk if config == "drain-disk" else b.work) / "spool-slot"
        expected = {}

        def prepare(template=spools[n][kind], slot=slot, config=config, n=n):
            fresh_copy(template, slot)
            if config == "drain-disk":
                os.sync()  # the copy's dirty pages are not the deliverer's to write back
            expected.update(count=sink.count + n, busy=sink.busy, conns=sink.connections)

        def run(config=configs[config]):
            return timed([str(a.pushgate), "--config", str(config), "deliver", "--once"], env=b.env)

        def verify(slot=slot, key=key):
            stats.setdefault(key, []).append((sink.busy - expected["busy"], sink.connections - expected["conns"]))
            return sink.count == expected["count"] and queued_jobs(slot) == 0 and incoming_events(slot) == 0

        out.append(Case("drain", key, run, prepare=prepare, verify=verify))
    return out


def drain_report(results, stats, a):
    print(f"\n(a) deliverer throughput vs backlog: one `pushgate deliver --once` draining N events into a "
          f"local keep-alive HTTP sink (204), spool on tmpfs, medians of {a.drain_rounds} rounds:")
    head = (f"{'backlog':<34} {'wall':>9} {'events/s':>9} {'per event':>10} {'cpu':>9} {'cpu/event':>10} "
            f"{'sink busy':>10} {'conns':>6}")
    print(head)
    print("-" * len(head))
    rates = {}
    for key, label, n, kind, config in drain_variants(a):
        mine = results[("drain", key)]
        if not mine["wall"]:
            print(f"{label:<34} (every run failed: no figures)")
            continue
        wall, cpu = med(mine["wall"]), med(mine["cpu"])
        rates[key] = n / (wall / 1000)
        sink_share = med([s for s, _ in stats.get(key, [(0.0, 0)])]) * 1000 / wall
        conns = med([c for _, c in stats.get(key, [(0.0, 0)])])
        print(f"{label:<34} {wall:7.0f}ms {rates[key]:9.0f} {wall / n * 1000:8.0f}us {cpu:7.0f}ms "
              f"{cpu / n * 1000:8.0f}us {sink_share:9.0%} {conns:6.0f}")
    print("'sink busy' = time the sink spent on requests / wall time (well below 100%: not the bottleneck); "
          "'conns' = TCP connections the sink accepted per run (1 = keep-alive held); CPU = the deliverer's "
          "user+sys.")
    sizes = sorted(a.sizes)
    for kind, what in (("queued", "queued jobs (sending only)"), ("incoming", "incoming events (fan-out + send)")):
        got = {n: rates.get(f"{kind}-{n}") for n in sizes}
        if any(v is None for v in got.values()):
            print(f"{what}: some sizes have no figures: FAIL")
            continue
        lo, hi = min(got.values()), max(got.values())
        spread = 1 - lo / hi
        print(f"{what}: {' / '.join(f'{v:.0f}' for v in got.values())} events/s at "
              f"{' / '.join(str(n) for n in sizes)}; goal >= {RATE_GOAL:.0f}/s at every size: "
              f"{goal(lo >= RATE_GOAL)}; flat: slowest {spread:.0%} below fastest, goal <= {FLAT_GOAL:.0%}: "
              f"{goal(spread <= FLAT_GOAL)}")


# --------------------------------------------------------------------------- main

def disk_dir(a):
    """A directory on a real filesystem for the spools whose fsyncs must cost what they cost."""
    base = Path(tempfile.mkdtemp(prefix="pushgate-bench-disk-", dir=a.disk_dir))
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(base)], capture_output=True, text=True).stdout.strip()
    return base, fs


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(p, rounds=25, quick_rounds=3)
    p.add_argument("--sizes", help="backlog sizes drained in (a), comma-separated (default 1000,10000,100000; "
                                   "200,1000,5000 with --quick)")
    p.add_argument("--drain-rounds", type=int, help="timed rounds of (a) (default 3; 1 with --quick)")
    p.add_argument("--fill-workers", type=int, default=2, help="hook loops filling (a)'s spool at once (default 2)")
    p.add_argument("--fill-batch", type=int, default=2000, help="hook pairs per loop between moves into the pool")
    p.add_argument("--by-hand", type=int, metavar="N",
                   help="make only N events with the hooks (default: all, ~10 ms of CPU each) and the rest as "
                        "byte-for-byte copies of them under later numbers")
    p.add_argument("--disk", dest="disk_too", action="store_true",
                   help="(a) also drains the queued jobs with the spool on disk (sizes <= 10,000)")
    p.add_argument("--history", type=int, help="commits already on the server (default 10000)")
    p.add_argument("--tags", type=int, default=20, help="annotated tags spread over the history (default 20)")
    p.add_argument("--disk-dir", default="/var/tmp", help="where the on-disk spools go (default /var/tmp)")
    p.add_argument("--only", choices=["a", "b"], help="run only (a) throughput or (b) post-receive cost")
    p.add_argument("--sink-only", type=int, metavar="PORT",
                   help="only serve the sink on 127.0.0.1:PORT until interrupted (to profile a deliverer "
                        "on a kept spool: bench/PROFILING.md)")
    a = p.parse_args()
    if a.sink_only is not None:
        sink = Sink(a.sink_only)
        print(f"sink {sink.url} (HTTP/1.1 keep-alive, 204); Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(5)
                print(f"  {sink.count} requests, {sink.connections} connections, busy {sink.busy:.1f} s", flush=True)
        except KeyboardInterrupt:
            sink.stop()
        return
    finish_common_options(a)
    a.sizes = [int(s) for s in (a.sizes or ("200,1000,5000" if a.quick else "1000,10000,100000")).split(",")]
    a.drain_rounds = a.drain_rounds if a.drain_rounds is not None else (1 if a.quick else 3)
    a.history = a.history or (2000 if a.quick else 10_000)
    a.disk, fs = disk_dir(a)
    if not become_subreaper():
        raise SystemExit("bench: prctl(PR_SET_CHILD_SUBREAPER) failed: cannot wait for the detached deliverers")
    sink = Sink()
    keep = children()  # the sink (and whatever multiprocessing started): never reaped

    def body(work, where):
        b = Bench(a, work)
        print(f"pushgate delivery bench: {a.pushgate}, {b.run('--version').strip()}, {os.cpu_count()} CPUs, "
              f"scratch {where}, disk spools in {a.disk} ({fs}), sink {sink.url} (HTTP/1.1 keep-alive)", flush=True)
        if fs in ("tmpfs", "ramfs"):
            print(f"warning: {a.disk} is on {fs}: fsync costs nothing there (pass --disk-dir)")
        servers, client, one, configs, spools = build(b, sink, a.disk)
        failures = []
        if a.only != "b":
            print("(a) deliverer throughput:", flush=True)
            stats = {}
            load_before = os.getloadavg()[0]
            cases = drain_cases(b, sink, configs, spools, stats)
            if a.warmup:
                # One untimed drain of the smallest backlog (page cache, the sink's threads),
                # instead of a whole warm-up round of every size.
                warm = cases[0]
                warm.prepare(), warm.run(), warm.verify()
                stats.clear()
            drained, failed = interleaved(cases, a.drain_rounds, 0, a.seed)
            drain_load = (load_before, os.getloadavg()[0])
            failures += failed
        if a.only != "a":
            print("(b) post-receive cost:", flush=True)
            load_before = os.getloadavg()[0]
            results, failed = interleaved(push_cases(b, sink, servers, client, one, configs, keep),
                                          a.rounds, a.warmup, a.seed)
            push_load = (load_before, os.getloadavg()[0])
            failures += failed
        if a.only != "b":
            drain_report(drained, stats, a)
            print(load_line(*drain_load))
        if a.only != "a":
            push_report(results, a)
            print(load_line(*push_load))
        print_failures(failures)
        if a.quick:
            print("quick mode: reduced sizes and rounds; PASS/FAIL is only indicative")

    try:
        in_scratch(a, body)
    finally:
        sink.stop()
        if a.keep:
            print(f"kept {a.disk} (disk spools): rm -rf {a.disk}")
        else:
            shutil.rmtree(a.disk, True)


if __name__ == "__main__":
    main()
