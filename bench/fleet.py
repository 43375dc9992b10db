#!/usr/bin/env python3
"""Fleet benchmark for pushgate's PostgreSQL outbox (`[spool] backend = "postgres"`, SPEC
section 11), against a throw-away PostgreSQL the script starts (bench/pg.py: initdb on
/dev/shm, unix socket only, run as `nobody` when root, fsync off as in the tests).

(a) Throughput through the outbox. pushgate's own events, made by its hooks run by hand as
    git runs them for a 1-commit push (delivery.py's method: `pushgate pre-receive` then
    `pushgate post-receive` in a `sh` loop, into a spool whose watch.lock this script holds,
    so no deliverer starts), `--by-hand` of them, the rest copies of those under later
    numbers with a new event id each (a delivery id is made from the event id and the
    connector, so every job is distinct). One `deliver
    --once` with a file-backend configuration fans them out into the 4 connectors' local
    queues and dies before its first send (PUSHGATE_CRASH_AT=deliver:before-send); one
    `deliver --once` with the fleet configuration relays those 4 x N local jobs into the
    outbox (timed: the relay rate) and dies before its first send too (its leases, 1 s, run
    out by themselves). The relayed rows are kept in a side table; each round restores them
    (TRUNCATE + INSERT ... OVERRIDING SYSTEM VALUE: the same rows, ids and JSON that
    pushgate wrote; VACUUM ANALYZE, untimed), then starts the workers and times until the
    jobs table is empty. Each worker is a `pushgate deliver --watch` with its own
    configuration and local spool (another machine), the same database and connectors.
    Variants: 1 worker; 4 workers; 4 workers whose configurations name one connector each
    (the fleet partitioned by hand: a comparison, not the goal's setup); and the same three
    with `deliver --once` workers (no LISTEN thread: what the delivery path alone does; a
    --once worker works the connectors it gets until their queues are empty, then exits).
    The sink: one delivery.py keep-alive HTTP/1.1 sink (204) process per connector. No
    warm-up round (the variants' order is shuffled per round). Goal: >= 5,000 deliveries/s
    with 4 workers (a delivery = one job = one request; each push event is 4 of them, one
    per connector).

(b) Push return -> first delivery attempt, idle queue. A real 1-commit `git push` into a
    fresh copy of the server (~10,000 commits of history); the time from the push's return
    to the sink having read the request (time.monotonic() in both processes). Variants, each
    with its own connector, spool and sink:
      pg-watch    the server's own `deliver --watch` (woken by inotify on incoming/: fan-out,
                  relay, take the lease, send);
      pg-once     no watcher: post-receive's detached `deliver --once --after <receive-pack>`
                  (connect, fan-out, relay, take, send);
      pg-notify   another machine's worker (`deliver --watch`, its own spool) woken by
                  LISTEN/NOTIFY: the server's detached deliverer relays and then dies
                  (PUSHGATE_CRASH_AT=relay:after-insert, right after the relay's commit, which
                  is the NOTIFY), so it never takes the connector; the worker does. The job it
                  left in its local queue is relayed again (nothing inserted: idempotent) and
                  removed by an untimed `deliver --once` after the round.
      pg-notify-fresh  the same with a worker started for each push, the push made as soon
                  as the worker's LISTEN connection shows in pg_stat_activity (this pushgate's
                  listener hears notifications only in its first 500 ms: see bench/README.md).
      file-watch, file-once   the same with the file backend, for comparison.
    Goal: median < 50 ms (pg-watch and pg-notify: the idle-queue case of the issue).

(c) What a push pays. The same 1-commit push, push.py's method (fresh copy per push,
    shuffled variants per round, paired differences): no hooks; pushgate + one post http
    connector, file backend; the same with backend = "postgres" (database up); and with the
    database down (its URL names a socket directory where no server listens). After each
    push the script waits (untimed) for the detached deliverer, re-parented to it; its CPU
    is reported apart (it is not the pusher's). Goal: the postgres backend adds nothing
    beyond the file backend (the hooks only touch the local spool).

A report, not a test: it never fails on a missed goal. Standard library only; local files,
/dev/shm and 127.0.0.1 only.
"""

import argparse
import fcntl
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from common import (RULES_CONFIG, Bench, Case, add_common_options, become_subreaper, build_server, children,
                    commit_stream, finish_common_options, fresh_copy, goal, in_scratch, interleaved, iqr,
                    load_line, med, paired, print_failures, project_files, reap_children, timed_push,
                    variant_table)
from delivery import Sink, make_spool_dirs
from pg import PgServer

RATE_GOAL = 5000.0     # deliveries/s with 4 workers, (a)
LATENCY_GOAL = 50.0    # ms, median push return -> first attempt, idle queue, (b)
CONNECTORS = ["c1", "c2", "c3", "c4"]

FILE_SPOOL = """
[spool]
dir = "{spool}"
retry = ["5s", "5m"]
"""

FLEET_SPOOL = """
[spool]
dir = "{spool}"
retry = ["5s", "5m"]
backend = "postgres"
url_file = "{url_file}"
lease = "{lease}"
"""

CONNECTOR = """
[[extension]]
name = "{name}"
type = "http"
phase = "post"
url = "{url}"
timeout = "5s"
"""


def say(text):
    print(text, flush=True)


STARTED: list[subprocess.Popen] = []  # every deliverer this script started: none outlives it


def spawn(argv, env, log: Path) -> subprocess.Popen:
    out = open(log, "ab")
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    out.close()
    STARTED.append(proc)
    return proc


def kill_started():
    for proc in STARTED:
        if proc.returncode is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
                os.waitpid(proc.pid, 0)
            except OSError:
                pass


class Lab:
    """The scratch dir, the database, the sinks, the configurations."""

    def __init__(self, b: Bench, db: PgServer):
        self.b, self.db = b, db
        self.w = b.work
        self.url_file = self.w / "db.url"
        self.url_file.write_text(db.url + "\n")
        # A database URL where nothing listens: a socket directory of our own, no server.
        nowhere = self.w / "no-db"
        nowhere.mkdir()
        self.down_url_file = self.w / "db-down.url"
        self.down_url_file.write_text(f"host={nowhere} port=5432 user=postgres dbname=postgres connect_timeout=2\n")

    def config(self, name: str, spool: Path, connectors: dict, backend: str = "postgres", lease: str = "30s",
               url_file: Path | None = None) -> Path:
        """A configuration: the push benchmark's rules, `connectors` ({name: url}), a spool."""
        text = RULES_CONFIG.format(audit=self.w / f"audit-{name}.jsonl")
        if backend == "postgres":
            text += FLEET_SPOOL.format(spool=spool, url_file=url_file or self.url_file, lease=lease)
        else:
            text += FILE_SPOOL.format(spool=spool)
        for cname, url in connectors.items():
            text += CONNECTOR.format(name=cname, url=url)
        path = self.w / f"{name}.toml"
        path.write_text(text)
        self.b.check_config(path)
        return path


def start_watch(b: Bench, config: Path, spool: Path, log: Path) -> subprocess.Popen:
    """A `pushgate deliver --watch`; returns once it holds its spool's watch.lock."""
    make_spool_dirs(spool)
    proc = spawn([str(b.args.pushgate), "--config", str(config), "deliver", "--watch"], b.env, log)
    deadline = time.monotonic() + 10
    lock = spool / "watch.lock"
    while time.monotonic() < deadline:
        if lock.exists():
            try:
                with open(lock) as f:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(f, fcntl.LOCK_UN)
            except BlockingIOError:
                return proc
        if proc.poll() is not None:
            raise SystemExit(f"bench: deliver --watch exited ({proc.returncode}): {log.read_text()[-1000:]}")
        time.sleep(0.005)
    raise SystemExit(f"bench: deliver --watch did not take {lock} within 10 s")


def stop_all(procs: list[subprocess.Popen]) -> list[float]:
    """SIGTERM each (a --watch finishes its attempt and stops), then wait for each; their
    rusage CPU seconds. Not proc.poll(): it would reap a process and lose its rusage."""
    for proc in procs:
        try:
            os.kill(proc.pid, signal.SIGTERM)  # a zombie (a --once that ended) ignores it
        except ProcessLookupError:
            pass
    cpus = []
    for proc in procs:
        try:
            _, _, usage = os.wait4(proc.pid, 0)
            proc.returncode = 0
            cpus.append(usage.ru_utime + usage.ru_stime)
        except ChildProcessError:
            proc.wait()
            cpus.append(float("nan"))
    return cpus


def stop_watch(proc: subprocess.Popen) -> float:
    return stop_all([proc])[0]


# --------------------------------------------------------------------------- fixtures

def build(b: Bench):
    a = b.args
    w = b.work
    rng = random.Random(1234)
    files = project_files()
    t0 = time.perf_counter()
    server = w / "server.git"
    history = build_server(b, server, a.history, a.tags, rng, files)
    tip = history[-1]
    client = w / "client.git"
    shutil.copytree(server, client, symlinks=True)
    last = 1_600_000_000 + a.history * 600
    s1, _ = commit_stream("refs/heads/one", 100_000, 1, tip, files, rng, last, "src/feature_one", allow_deploy=False)
    b.run("fast-import", "--quiet", cwd=client, input=s1)
    b.run("repack", "-a", "-d", "-q", cwd=client)
    one = b.run("rev-parse", "refs/heads/one", cwd=client).strip()
    hooked = w / "server-hooked.git"
    shutil.copytree(server, hooked, symlinks=True)
    b.install(hooked)
    say(f"fixtures: {len(history)} commits of history, built in {time.perf_counter() - t0:.1f} s")
    return server, hooked, client, tip, one


# --------------------------------------------------------------------------- (a) throughput

def make_events(b: Bench, lab: Lab, server: Path, client: Path, tip: str, one: str, spool: Path, total: int) -> int:
    """`total` events in spool/incoming: --by-hand of them from pushgate's hooks run by hand
    (two loops at once, each into its own spool, moved into `spool` between batches), the
    rest copies. Returns how many the hooks made."""
    a = b.args
    w = b.work
    fill_repo = w / "fill.git"
    shutil.copytree(server, fill_repo, symlinks=True)
    b.run("push", "-q", str(fill_repo), "refs/heads/one:refs/heads/fill-side", cwd=client)
    b.run("update-ref", "-d", "refs/heads/fill-side", cwd=fill_repo)
    stdin = w / "fill-stdin"
    stdin.write_text(f"{tip} {one} refs/heads/main\n")
    by_hand = min(total, a.by_hand)
    loops = []
    for k in range(2):
        fspool = w / f"fill-spool-{k}"
        make_spool_dirs(fspool)
        lock = open(fspool / "watch.lock", "w")
        fcntl.flock(lock, fcntl.LOCK_EX)  # post-receive: "a deliver --watch runs", so it starts none
        fconfig = lab.config(f"fill-{k}", fspool, {c: "http://127.0.0.1:9/unused" for c in CONNECTORS}, "file")
        loops.append((fspool, fconfig, lock))
    loop = ('i=0; while [ "$i" -lt "$1" ]; do "$PG" pre-receive <"$IN" >/dev/null || exit 1; '
            '"$PG" post-receive <"$IN" >/dev/null || exit 2; i=$((i+1)); done')
    make_spool_dirs(spool)
    incoming = spool / "incoming"
    made = 0
    t0 = time.perf_counter()
    while made < by_hand:
        per = max(1, min(1000, -(-(by_hand - made) // len(loops))))
        procs = []
        for fspool, fconfig, _ in loops:
            env = dict(b.env, PUSHGATE_CONFIG=str(fconfig), PG=str(a.pushgate), IN=str(stdin), GIT_DIR=".")
            procs.append(subprocess.Popen(["sh", "-c", loop, "fill", str(per)], cwd=fill_repo, env=env,
                                          stderr=subprocess.PIPE))
        for proc in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"bench: filling the spool failed ({proc.returncode}): {err.decode()[:500]}")
        for fspool, _, _ in loops:
            for entry in sorted(os.scandir(fspool / "incoming"), key=lambda e: e.name):
                if entry.name.endswith(".record"):
                    raise SystemExit(f"bench: an unconfirmed record was left: {entry.path}")
                if entry.name.endswith(".event") and made < by_hand:
                    try:
                        os.link(entry.path, incoming / entry.name)
                        made += 1
                    except FileExistsError:
                        pass  # the two loops' clocks gave the same number: made again
                os.unlink(entry.path)
    for _, _, lock in loops:
        lock.close()
    names = sorted(n for n in os.listdir(incoming) if n.endswith(".event"))
    hook_s = time.perf_counter() - t0
    number = int(names[-1].split(".")[0])
    for i in range(total - len(names)):
        number += 1
        # A copy under a new event id (delivery ids are made from the event id and the
        # connector: a byte-for-byte copy would be relayed as the same deliveries, once).
        text = (incoming / names[i % len(names)]).read_bytes()
        at = text.index(b'"id":"') + 6
        text = text[:at] + str(uuid.uuid4()).encode() + text[at + 36:]
        (incoming / f"{number:020}.event").write_bytes(text)
    (spool / "number").write_text(str(number))
    say(f"(a) {made} events from pre-/post-receive run by hand in {hook_s:.1f} s"
        + (f", {total - made} copies of them under later numbers and new event ids" if total > made else ""))
    return made


def fill_outbox(b: Bench, lab: Lab, server, client, tip, one, sinks) -> dict:
    """The events, fanned out into 4 local queues, relayed into the outbox; the rows saved
    in public.bench_jobs. Returns figures of the relay."""
    a = b.args
    db = lab.db
    spool = b.work / "spool-fill"
    urls = {c: sinks[c].url for c in CONNECTORS}
    made = make_events(b, lab, server, client, tip, one, spool, a.events)
    crash = dict(b.env, PUSHGATE_CRASH_AT="deliver:before-send")
    fan = subprocess.run([str(a.pushgate), "--config", str(lab.config("fanout", spool, urls, "file")), "deliver",
                          "--once"], env=crash, capture_output=True)
    queued = sum(len([n for n in os.listdir(spool / "connectors" / c / "queue") if n.endswith(".json")])
                 for c in CONNECTORS)
    if queued != 4 * a.events or any(n.endswith(".event") for n in os.listdir(spool / "incoming")):
        raise SystemExit(f"bench: expected {4 * a.events} local jobs, found {queued}: {fan.stderr.decode()[:500]}")
    # (`check` wants a lease longer than the connectors' 5 s timeout; the killed relay's
    # leases are freed by hand below.)
    relay_config = lab.config("relay", spool, urls, "postgres", lease="7s")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    db_cpu = db.cpu_seconds()
    t0 = time.perf_counter()
    relay = subprocess.run([str(a.pushgate), "--config", str(relay_config), "deliver", "--once"], env=crash,
                           capture_output=True)
    relay_s = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    time.sleep(0.3)
    db_cpu = db.cpu_seconds() - db_cpu
    rows = int(db.psql("SELECT count(*) FROM pushgate.jobs"))
    left = sum(len(os.listdir(spool / "connectors" / c / "queue")) for c in CONNECTORS)
    if rows != 4 * a.events or left:
        raise SystemExit(f"bench: the relay left {rows} rows in the outbox, {left} local jobs: "
                         f"{relay.stderr.decode()[:500]}")
    if sum(s.count for s in sinks.values()):
        raise SystemExit("bench: the sinks got requests while the outbox was being filled")
    db.psql("DROP TABLE IF EXISTS public.bench_jobs; CREATE TABLE public.bench_jobs AS SELECT * FROM pushgate.jobs")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    size = db.psql("SELECT pg_size_pretty(pg_total_relation_size('pushgate.jobs'))")
    say(f"(a) outbox: {rows} jobs ({a.events} events x 4 connectors, {size}); the relay (one deliver --once: "
        f"connect, relay in transactions of 100, then killed at its first send) took {relay_s:.2f} s = "
        f"{rows / relay_s:.0f} jobs/s, deliverer CPU {cpu:.2f} s, database CPU {db_cpu:.2f} s")
    db.psql("UPDATE pushgate.connectors SET holder = NULL, expires = NULL")  # the killed relay's leases
    return {"relay_s": relay_s, "rows": rows, "cpu": cpu, "db_cpu": db_cpu, "by_hand": made}


# (key, label, workers, one connector each, `deliver` mode)
THROUGHPUT_VARIANTS = [
    ("w1", "1 x --watch, 4 connectors", 1, False, "--watch"),
    ("w4", "4 x --watch, 4 connectors each", 4, False, "--watch"),
    ("w4p", "4 x --watch, 1 connector each", 4, True, "--watch"),
    ("o1", "1 x --once, 4 connectors", 1, False, "--once"),
    ("o4", "4 x --once, 4 connectors each", 4, False, "--once"),
    ("o4p", "4 x --once, 1 connector each", 4, True, "--once"),
]


def throughput(b: Bench, lab: Lab, sinks) -> tuple[dict, tuple]:
    a = b.args
    db = lab.db
    session = db.session()
    total = 4 * a.events
    urls = {c: sinks[c].url for c in CONNECTORS}
    configs = {}
    for key, _label, n, partitioned, _mode in THROUGHPUT_VARIANTS:
        for i in range(n):
            spool = b.work / f"spool-{key}-{i}"
            mine = {CONNECTORS[i]: urls[CONNECTORS[i]]} if partitioned else urls
            configs[(key, i)] = (lab.config(f"{key}-{i}", spool, mine, "postgres"), spool)
    results = {key: [] for key, *_ in THROUGHPUT_VARIANTS if key in a.variants}
    rng = random.Random(a.seed)
    load_before = os.getloadavg()[0]
    for rnd in range(a.drain_rounds):
        warm = False
        order = [v for v in THROUGHPUT_VARIANTS if v[0] in a.variants]
        rng.shuffle(order)
        t_round = time.perf_counter()
        for key, _label, n, _p, mode in order:
            session.query("TRUNCATE pushgate.jobs, pushgate.attempts")
            session.query("INSERT INTO pushgate.jobs OVERRIDING SYSTEM VALUE SELECT * FROM public.bench_jobs")
            session.query("UPDATE pushgate.connectors SET holder = NULL, expires = NULL")
            session.query("VACUUM ANALYZE pushgate.jobs")
            session.query("CHECKPOINT")
            counts0 = sum(s.count for s in sinks.values())
            busy0 = {c: s.busy for c, s in sinks.items()}
            logs = [b.work / f"log-{key}-{i}-{rnd}.txt" for i in range(n)]
            db_cpu = db.cpu_seconds()
            t0 = time.perf_counter()
            procs = []
            for i in range(n):
                config, spool = configs[(key, i)]
                make_spool_dirs(spool)
                procs.append(spawn([str(a.pushgate), "--config", str(config), "deliver", mode], b.env, logs[i]))
            deadline = time.perf_counter() + a.drain_timeout
            while sum(s.count for s in sinks.values()) - counts0 < total and time.perf_counter() < deadline:
                time.sleep(0.002)
            left = -1
            while time.perf_counter() < deadline or left == -1:
                left = int(session.query("SELECT count(*) FROM pushgate.jobs"))
                if left == 0:
                    break
                time.sleep(0.002)
            wall = time.perf_counter() - t0
            cpus = stop_all(procs)
            time.sleep(0.2)
            db_cpu = db.cpu_seconds() - db_cpu
            got = sum(s.count for s in sinks.values()) - counts0
            shares = [logs[i].read_bytes().count(b" delivered ") for i in range(n)]
            busy = max(s.busy - busy0[c] for c, s in sinks.items())
            if left != 0:
                say(f"  {key}: {left} jobs left after {a.drain_timeout} s (not counted)")
                continue
            if not warm:
                results[key].append({"wall": wall, "requests": got, "cpu": sum(cpus), "cpus": cpus,
                                     "db_cpu": db_cpu, "shares": shares, "busy": busy})
        say(f"  (a) round {rnd + 1}/{a.drain_rounds} done in {time.perf_counter() - t_round:.1f} s")
    session.close()
    return results, (load_before, os.getloadavg()[0])


def throughput_report(results, load, relay, a):
    total = 4 * a.events
    say(f"\n(a) throughput through the outbox: {total} jobs ({a.events} events x 4 connectors) from the outbox to "
        f"4 local keep-alive HTTP sinks (204), time from starting the workers to an empty jobs table, medians "
        f"of {a.drain_rounds} round(s):")
    head = (f"{'workers':<30} {'wall':>8} {'deliv/s':>8} {'events/s':>9} {'worker cpu':>11} {'db cpu':>8} "
            f"{'dups':>5} {'sink busy':>9}  deliveries per worker (median round)")
    say(head)
    say("-" * len(head))
    rates = {}
    for key, label, n, _p, _mode in THROUGHPUT_VARIANTS:
        runs = results.get(key)
        if runs is None:
            continue
        if not runs:
            say(f"{label:<30} (no figures: every run failed)")
            continue
        wall = med([r["wall"] for r in runs])
        rates[key] = total / wall
        mid = sorted(runs, key=lambda r: r["wall"])[len(runs) // 2]
        dups = med([r["requests"] - total for r in runs])
        say(f"{label:<30} {wall:7.2f}s {total / wall:8.0f} {a.events / wall:9.0f} {med([r['cpu'] for r in runs]):10.2f}s "
            f"{med([r['db_cpu'] for r in runs]):7.2f}s {dups:5.0f} {med([r['busy'] for r in runs]) / wall:9.0%}  "
            f"{' / '.join(str(s) for s in mid['shares'])} (cpu {' / '.join(f'{c:.1f}' for c in mid['cpus'])} s)")
    say("deliv/s = jobs (HTTP requests) per second; events/s = push events per second (each is 4 deliveries); "
        "worker cpu = user+sys of all workers; db cpu = the PostgreSQL server's; dups = requests beyond one per job; "
        "sink busy = the busiest sink's time on requests / wall.")
    say(f"relay into the outbox (one server's deliver --once): {relay['rows'] / relay['relay_s']:.0f} jobs/s "
        f"({relay['rows']} jobs in {relay['relay_s']:.2f} s)")
    labels = {key: label for key, label, *_ in THROUGHPUT_VARIANTS}
    for key in ("w4", "w4p", "o4p"):
        if key in rates:
            say(f"goal >= {RATE_GOAL:.0f} deliveries/s with 4 workers, {labels[key]}: {rates[key]:.0f}/s: "
                f"{goal(rates[key] >= RATE_GOAL)} (counted as push events/s: {rates[key] / 4:.0f})")
    say(load_line(*load))


# --------------------------------------------------------------------------- (b) latency

LATENCY_VARIANTS = [
    ("pg-watch", "postgres: server's deliver --watch"),
    ("pg-once", "postgres: detached deliver --once"),
    ("pg-notify", "postgres: other machine's worker (NOTIFY)"),
    ("pg-notify-fresh", "postgres: the same, worker < 0.5 s old"),
    ("file-watch", "file: deliver --watch"),
    ("file-once", "file: detached deliver --once"),
]


def latency(b: Bench, lab: Lab, hooked: Path, client: Path, one: str):
    a = b.args
    w = b.work
    sinks = {key: Sink() for key, _ in LATENCY_VARIANTS}
    names = {key: key.replace("-", "_") for key, _ in LATENCY_VARIANTS}
    spools = {key: w / f"spool-lat-{key}" for key, _ in LATENCY_VARIANTS}
    configs = {}
    for key, _ in LATENCY_VARIANTS:
        backend = "postgres" if key.startswith("pg") else "file"
        configs[key] = lab.config(f"lat-{key}", spools[key], {names[key]: sinks[key].url}, backend)
    remote_spool = w / "spool-lat-remote"
    remote = lab.config("lat-remote", remote_spool, {names["pg-notify"]: sinks["pg-notify"].url}, "postgres")
    fresh_spool = w / "spool-lat-fresh"
    fresh = lab.config("lat-fresh", fresh_spool, {names["pg-notify-fresh"]: sinks["pg-notify-fresh"].url},
                       "postgres")
    watchers = [start_watch(b, configs["pg-watch"], spools["pg-watch"], w / "lat-pg-watch.log"),
                start_watch(b, configs["file-watch"], spools["file-watch"], w / "lat-file-watch.log"),
                start_watch(b, remote, remote_spool, w / "lat-remote.log")]
    for key in ("pg-once", "pg-notify", "pg-notify-fresh", "file-once"):
        make_spool_dirs(spools[key])
    session = lab.db.session()
    listening = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pushgate' "
                 "AND query = 'LISTEN pushgate_jobs'")
    time.sleep(0.5)
    keep = children()  # the sinks, the watchers and psql: never reaped
    window = []  # pg-notify-fresh: ms from the worker's LISTEN being seen to the push's return
    slot = w / "slot.git"
    lat = {key: {} for key, _ in LATENCY_VARIANTS}
    extra = {key: [] for key, _ in LATENCY_VARIANTS}
    cases = []
    rnd_of = {"n": 0}
    for key, _ in LATENCY_VARIANTS:
        env = dict(b.env, PUSHGATE_CONFIG=str(configs[key]))
        if key.startswith("pg-notify"):
            env["PUSHGATE_CRASH_AT"] = "relay:after-insert"
        state = {}

        def prepare(key=key):
            fresh_copy(hooked, slot)
            time.sleep(0.1)  # idle: nothing runs but the sleeping watchers
            state["count"] = sinks[key].count
            sinks[key].reset_first()
            if key == "pg-notify-fresh":
                # A worker started now: its listener hears notifications only during its
                # first 500 ms (see the report); push as soon as it listens.
                before = int(session.query(listening))
                state["worker"] = start_watch(b, fresh, fresh_spool, w / "lat-fresh.log")
                deadline = time.monotonic() + 10
                while int(session.query(listening)) <= before and time.monotonic() < deadline:
                    time.sleep(0.002)
                state["listening"] = time.monotonic()

        def run(env=env):
            out = timed_push(b, client, slot, "refs/heads/one:refs/heads/main", env=env)
            state["end"] = time.monotonic()
            return out

        def verify(key=key):
            if b.run("rev-parse", "refs/heads/main", cwd=slot).strip() != one:
                return False
            if not sinks[key].wait_for(state["count"] + 1, 15.0):
                return False
            state["latency"] = (sinks[key].first - state["end"]) * 1000
            if "worker" in state:
                window.append((state["end"] - state.pop("listening")) * 1000)
                stop_watch(state.pop("worker"))
            _n, _cpu, done = reap_children(15.0, exclude=keep)
            if key.startswith("pg-notify"):
                # The job the killed relay left in the server's local queue: relayed again
                # (nothing inserted) and removed; the connector has nothing left to send.
                b.pushgate("--config", configs[key], "deliver", "--once")
            time.sleep(0.05)
            state["dups"] = sinks[key].count - state["count"] - 1
            return done

        def after(key=key):
            if "latency" in state:
                lat[key][rnd_of["n"]] = state.pop("latency")
                extra[key].append(state.get("dups", 0))

        cases.append(Case("latency", key, run, prepare=prepare, verify=verify, after=after))

    # Every variant once per round, in a shuffled order; the latency is kept by `after`.
    rounds = a.latency_rounds
    rng = random.Random(a.seed + 1)
    failures = []
    load_before = os.getloadavg()[0]
    for rnd in range(a.warmup + rounds):
        rnd_of["n"] = rnd
        order = list(cases)
        rng.shuffle(order)
        for case in order:
            case.prepare()
            code, err, _wall, _cpu = case.run()
            ok = code == 0 and case.verify()
            if not ok:
                failures.append(("latency", case.variant, code, err.strip()))
            if rnd >= a.warmup:
                case.after()
            else:
                case.after()
                lat[case.variant].pop(rnd, None)
        if (rnd + 1) % 5 == 0 or rnd + 1 == a.warmup + rounds:
            say(f"  (b) {rnd + 1}/{a.warmup + rounds} rounds")
    load = (load_before, os.getloadavg()[0])
    stop_all(watchers)
    for s in sinks.values():
        s.stop()
    session.close()
    extra["window"] = window
    return lat, extra, failures, load


def latency_report(lat, extra, load, a):
    say(f"\n(b) push return -> the sink has read the first attempt's request, idle queue, {a.latency_rounds} rounds "
        f"(negative: the request came before `git push` returned):")
    head = f"{'variant':<44} {'median':>8} {'p10':>8} {'p90':>8} {'min':>8} {'max':>8} {'dups':>5}"
    say(head)
    say("-" * len(head))
    for key, label in LATENCY_VARIANTS:
        v = sorted(lat[key].values())
        if not v:
            say(f"{label:<44} (no figures)")
            continue
        q = statistics.quantiles(v, n=10) if len(v) >= 2 else [v[0]] * 9
        say(f"{label:<44} {med(v):6.1f}ms {q[0]:6.1f}ms {q[8]:6.1f}ms {v[0]:6.1f}ms {v[-1]:6.1f}ms "
            f"{sum(extra[key]):5d}")
    say("dups = requests beyond one per push")
    if extra.get("window"):
        say(f"pg-notify-fresh: the push returned a median {med(extra['window']):.0f} ms after the fresh worker's "
            f"LISTEN connection was seen in pg_stat_activity")
    for key in ("pg-watch", "pg-notify"):
        v = list(lat[key].values())
        if v:
            say(f"goal median < {LATENCY_GOAL:.0f} ms, {key}: {med(v):.1f} ms: {goal(med(v) < LATENCY_GOAL)}")
    say(load_line(*load))


# --------------------------------------------------------------------------- (c) push cost

PUSH_VARIANTS = [
    ("plain", "no hooks"),
    ("file", "pushgate + post http, file backend"),
    ("pg", "pushgate + post http, postgres"),
    ("pg-down", "the same, database down"),
]


def push_cost(b: Bench, lab: Lab, server: Path, hooked: Path, client: Path, one: str):
    a = b.args
    w = b.work
    sink = Sink()
    configs = {
        "plain": lab.config("cost-plain", w / "spool-cost-plain", {}, "file"),
        "file": lab.config("cost-file", w / "spool-cost-file", {"sink": sink.url}, "file"),
        "pg": lab.config("cost-pg", w / "spool-cost-pg", {"sink": sink.url}, "postgres"),
        "pg-down": lab.config("cost-pg-down", w / "spool-cost-pg-down", {"sink": sink.url}, "postgres",
                              url_file=lab.down_url_file),
    }
    keep = children()
    slot = w / "slot-cost.git"
    deliverer_cpu = {key: [] for key, _ in PUSH_VARIANTS}
    cases = []
    for key, _label in PUSH_VARIANTS:
        template = server if key == "plain" else hooked
        env = dict(b.env, PUSHGATE_CONFIG=str(configs[key]))
        state = {}

        def prepare(template=template):
            fresh_copy(template, slot)
            state["count"] = sink.count

        def run(env=env):
            return timed_push(b, client, slot, "refs/heads/one:refs/heads/main", env=env)

        def verify(key=key):
            if b.run("rev-parse", "refs/heads/main", cwd=slot).strip() != one:
                return False
            if key in ("file", "pg") and not sink.wait_for(state["count"] + 1, 15.0):
                return False
            _n, cpu, done = reap_children(15.0, exclude=keep)
            deliverer_cpu[key].append(cpu)
            return done

        cases.append(Case("1 commit -> main", key, run, prepare=prepare, verify=verify))
    load_before = os.getloadavg()[0]
    results, failures = interleaved(cases, a.rounds, a.warmup, a.seed + 2)
    load = (load_before, os.getloadavg()[0])
    down_backlog = len([n for n in os.listdir(w / "spool-cost-pg-down" / "incoming") if n.endswith(".event")])
    sink.stop()
    return results, failures, load, deliverer_cpu, down_backlog


def push_cost_report(results, load, deliverer_cpu, down_backlog, a):
    scenario = "1 commit -> main"
    say(f"\n(c) what a push pays: 1 commit -> main, medians of {a.rounds} rounds (ratio and added: against no hooks; "
        f"last column: the paired difference to the file backend):")
    variant_table(results, scenario, PUSH_VARIANTS, "plain", reference={"pg": "file", "pg-down": "file"},
                  reference_label="vs file backend")
    file_r, pg_r, down_r = (results[(scenario, k)] for k in ("file", "pg", "pg-down"))
    for key, what in (("pg", pg_r), ("pg-down", down_r)):
        if what["wall"] and file_r["wall"]:
            d = paired(what["wall"], file_r["wall"])
            dc = paired(what["cpu"], file_r["cpu"])
            say(f"{dict(PUSH_VARIANTS)[key]}: {med(d):+.1f} ms wall (IQR {iqr(d):.1f}), {med(dc):+.1f} ms CPU "
                f"over the file backend")
    say("the detached deliverer after each push (not the pusher's time; waited for untimed), median CPU: "
        + ", ".join(f"{k} {med(v):.1f} ms" for k, v in deliverer_cpu.items() if v and k != "plain"))
    say(f"database down: {down_backlog} events waiting in that spool's incoming/ (recorded, not lost)")
    if pg_r["wall"] and file_r["wall"]:
        d, dc = paired(pg_r["wall"], file_r["wall"]), paired(pg_r["cpu"], file_r["cpu"])
        noise = iqr(d)
        ok = med(d) <= max(1.0, noise if noise == noise else 1.0) and med(dc) <= 1.0
        say(f"goal: the postgres backend adds nothing to a push beyond the file backend's local spool (paired "
            f"difference <= max(1 ms, its IQR) wall and <= 1 ms CPU): {med(d):+.1f} ms wall, {med(dc):+.1f} ms CPU: "
            f"{goal(ok)}")
    say(load_line(*load))


# --------------------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(p, rounds=15, quick_rounds=3)
    p.add_argument("--events", type=int, help="push events in the outbox for (a) (x 4 connectors = jobs; "
                                              "default 2500; 200 with --quick)")
    p.add_argument("--by-hand", type=int, default=1000,
                   help="events (a) makes with the hooks (the rest are copies; default 1000; 100 with --quick)")
    p.add_argument("--drain-rounds", type=int, help="timed rounds of (a) (default 3; 1 with --quick)")
    p.add_argument("--latency-rounds", type=int, help="rounds of (b) (default 25; 3 with --quick)")
    p.add_argument("--drain-timeout", type=float, default=300.0, help="(a): seconds a variant's run may take")
    p.add_argument("--variants", default=",".join(v[0] for v in THROUGHPUT_VARIANTS),
                   help="(a)'s variants, comma-separated (default all: "
                        + ", ".join(f"{v[0]} = {v[1]}" for v in THROUGHPUT_VARIANTS) + ")")
    p.add_argument("--history", type=int, help="commits already on the server (default 10000; 500 with --quick)")
    p.add_argument("--tags", type=int, default=20, help="annotated tags spread over the history (default 20)")
    p.add_argument("--only", default="abc", help="which parts to run, e.g. `a`, `bc` (default abc)")
    p.add_argument("--pg-durable", action="store_true",
                   help="fsync and full-page writes on (the data directory is still on /dev/shm)")
    a = p.parse_args()
    finish_common_options(a)
    a.events = a.events or (200 if a.quick else 2500)
    a.variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    if a.quick and not any(x.startswith("--by-hand") for x in sys.argv):
        a.by_hand = 100
    a.drain_rounds = a.drain_rounds if a.drain_rounds is not None else (1 if a.quick else 3)
    a.latency_rounds = a.latency_rounds if a.latency_rounds is not None else (3 if a.quick else 25)
    a.history = a.history or (500 if a.quick else 10_000)
    if not become_subreaper():
        raise SystemExit("bench: prctl(PR_SET_CHILD_SUBREAPER) failed: cannot wait for the detached deliverers")
    t_start = time.perf_counter()
    db = PgServer(durable=a.pg_durable)
    sinks = {}

    def body(work, where):
        b = Bench(a, work)
        say(f"pushgate fleet bench: {a.pushgate}, {b.run('--version').strip()}, {db.version}, {os.cpu_count()} CPUs, "
            f"scratch {where}, database {db.dir} (unix socket, fsync {'on' if a.pg_durable else 'off'})")
        lab = Lab(b, db)
        server, hooked, client, tip, one = build(b)
        failures = []
        out = {}
        if "a" in a.only:
            for c in CONNECTORS:
                sinks[c] = Sink()
            relay = fill_outbox(b, lab, server, client, tip, one, sinks)
            say(f"(a) throughput ({time.perf_counter() - t_start:.0f} s):")
            out["a"] = (*throughput(b, lab, sinks), relay)
            for s in sinks.values():
                s.stop()
            sinks.clear()
        if "b" in a.only:
            say(f"(b) latency ({time.perf_counter() - t_start:.0f} s):")
            lat, extra, failed, load = latency(b, lab, hooked, client, one)
            failures += failed
            out["b"] = (lat, extra, load)
        if "c" in a.only:
            say(f"(c) push cost ({time.perf_counter() - t_start:.0f} s):")
            results, failed, load, dcpu, backlog = push_cost(b, lab, server, hooked, client, one)
            failures += failed
            out["c"] = (results, load, dcpu, backlog)
        if "a" in out:
            results, load, relay = out["a"]
            throughput_report(results, load, relay, a)
        if "b" in out:
            latency_report(*out["b"], a)
        if "c" in out:
            push_cost_report(*out["c"], a)
        print_failures(failures)
        say(f"\ntotal {time.perf_counter() - t_start:.0f} s" + ("; quick mode: small sizes and few rounds, PASS/FAIL "
                                                              "only indicative" if a.quick else ""))

    try:
        in_scratch(a, body, kill_started)  # the deliverers die before the scratch dir goes
    finally:
        kill_started()
        for s in sinks.values():
            s.stop()
        db.cleanup()


if __name__ == "__main__":
    main()
