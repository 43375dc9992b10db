#!/usr/bin/env python3
"""Delivery benchmark for pushgate: (a) how fast the deliverer drains a spool into a local
HTTP endpoint, and (b) what spooling costs the pusher in post-receive.

(a) Throughput. N real `git push`es (one new commit each) into a server with pushgate's hooks
    and one `post` http extension fill a spool: they run with
    PUSHGATE_CRASH_AT=post-receive:after-event, so each post-receive writes its event and dies
    before it starts a deliverer (N events in incoming/, as after a deliverer outage). A copy
    of that spool is then fanned out into the connector's queue by a `deliver --once` that
    dies before its first send (PUSHGATE_CRASH_AT=deliver:before-send): N queued jobs. Each
    round times one `pushgate deliver --once` draining a fresh copy of each spool into a
    threaded http.server on 127.0.0.1 (in this script, answering 204), with the spool on a
    tmpfs (fsync costs nothing) and on the disk (the spool's fsyncs are real). Target
    (issue 4): >= 500 events/s draining the queued jobs, fsync on (the disk spool).

(b) Post-receive cost. A 1-commit push into a server with ~10,000 commits of history, fresh
    copy per push: no hooks; pushgate without extensions; pushgate with one `post` http
    extension (post-receive writes the journal and the event, fsynced, and starts a detached
    deliverer), spool on tmpfs and on disk; and the same three with pushgate's post-receive
    alone installed (no pre-receive), which isolates what post-receive costs. Between pushes
    (untimed) the script waits until the detached deliverer has delivered, so it never
    overlaps the next timed push. Target (issue 4): push with the post extension / push
    without hooks <= 1.15.

A report, not a test: it never fails on a missed target. Standard library only; local files
and 127.0.0.1 only.
"""

import argparse
import os
import random
import multiprocessing
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from common import (RULES_CONFIG, Bench, Case, add_common_options, build_server, commit_stream,
                    finish_common_options, fresh_copy, in_scratch, interleaved, load_line, med, paired,
                    print_failures, project_files, timed, timed_push, tree_size, variant_table, verdict)

RATE_TARGET = 500.0     # events/s, (a)
RATIO_TARGET = 1.15     # post-receive with a post extension vs no hooks, (b)

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
    """A threaded HTTP endpoint on 127.0.0.1 that reads each request (headers and a
    Content-Length body) and answers 204. Leaner than http.server (which parses headers
    with the email package), and served from a child process: in this process, the GIL and
    the thread that waits for the timed command slowed it down by half. Counts the requests
    and the time spent handling them, in shared memory."""

    RESPONSE = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    def __init__(self):
        ctx = multiprocessing.get_context("fork")
        self._count = ctx.Value("q", 0)
        self._busy = ctx.Value("d", 0.0)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        self.process = ctx.Process(target=Sink._serve, args=(listener, self._count, self._busy), daemon=True)
        self.process.start()
        listener.close()

    @staticmethod
    def _serve(listener, count, busy):
        def handle(conn):
            t0 = time.perf_counter()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, body = data.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    body += chunk
                conn.sendall(Sink.RESPONSE)
            with count.get_lock():
                count.value += 1
            with busy.get_lock():
                busy.value += time.perf_counter() - t0

        while True:
            conn, _ = listener.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    @property
    def count(self) -> int:
        return self._count.value

    @property
    def busy(self) -> float:
        return self._busy.value

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


# --------------------------------------------------------------------------- fixtures

def queued_jobs(spool: Path) -> int:
    queue = spool / "connectors" / "sink" / "queue"
    return sum(1 for _ in queue.glob("*.json")) if queue.is_dir() else 0


def incoming_events(spool: Path) -> int:
    incoming = spool / "incoming"
    return sum(1 for _ in incoming.glob("*.event")) if incoming.is_dir() else 0


def write_config(b: Bench, name: str, spool: Path | None, url: str) -> Path:
    path = b.work / f"{name}.toml"
    text = RULES_CONFIG.format(audit=b.work / f"audit-{name}.jsonl")
    if spool is not None:
        text += POST_EXTENSION.format(spool=spool, url=url)
    path.write_text(text)
    b.check_config(path)
    return path


def build(b: Bench, sink: Sink, disk: Path):
    a = b.args
    w = b.work
    rng = random.Random(1234)
    files = project_files()
    t0 = time.perf_counter()
    server = w / "server.git"
    history = build_server(b, server, a.history, a.tags, rng, files)
    tip = history[-1]

    # The client: `one` (1 commit for (b)) and `chain` (N commits, pushed one at a time to fill
    # the spool for (a)).
    client = w / "client.git"
    shutil.copytree(server, client, symlinks=True)
    last = 1_600_000_000 + a.history * 600
    s1, mark = commit_stream("refs/heads/one", 100_000, 1, tip, files, rng, last, "src/feature_one",
                             allow_deploy=False)
    s2, _ = commit_stream("refs/heads/chain", mark, a.events, tip, files, rng, last, "src/feature_chain",
                          allow_deploy=False)
    b.run("fast-import", "--quiet", cwd=client, input=s1 + s2)
    b.run("repack", "-a", "-d", "-q", cwd=client)
    one = b.run("rev-parse", "refs/heads/one", cwd=client).strip()
    chain = b.run("rev-list", "--reverse", f"{tip}..refs/heads/chain", cwd=client).split()

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

    # (a): fill a spool with N events from real pushes whose post-receive dies right after
    # writing its event (no deliverer starts), then fan a copy out into the queue.
    t0 = time.perf_counter()
    fill_server = w / "fill.git"
    shutil.copytree(hooked, fill_server, symlinks=True)
    incoming = w / "spool-incoming"
    fill_config = write_config(b, "fill", incoming, sink.url)
    env = dict(b.env, PUSHGATE_CONFIG=str(fill_config), PUSHGATE_CRASH_AT="post-receive:after-event")
    for i, commit in enumerate(chain):
        proc = subprocess.run([b.git, "push", "-q", str(fill_server), f"{commit}:refs/heads/main"],
                              cwd=client, env=env, capture_output=True)
        if proc.returncode != 0:
            raise SystemExit(f"bench: filling push {i} failed:\n{proc.stderr.decode(errors='replace')}")
    if incoming_events(incoming) != a.events:
        raise SystemExit(f"bench: expected {a.events} events in {incoming}/incoming, found {incoming_events(incoming)}")
    queued = w / "spool-queued"
    subprocess.run(["cp", "-a", str(incoming), str(queued)], check=True)
    queued_config = write_config(b, "queued", queued, sink.url)
    env = dict(b.env, PUSHGATE_CRASH_AT="deliver:before-send")
    subprocess.run([str(a.pushgate), "--config", str(queued_config), "deliver", "--once"], env=env,
                   capture_output=True)
    if queued_jobs(queued) != a.events or incoming_events(queued):
        raise SystemExit(f"bench: expected {a.events} queued jobs in {queued}, found {queued_jobs(queued)} "
                         f"(and {incoming_events(queued)} events left in incoming/)")
    if sink.count:
        raise SystemExit(f"bench: the sink got {sink.count} request(s) while the spool was being filled")
    print(f"spool: {a.events} events from {a.events} pushes, {tree_size(queued) / 1e6:.1f} MB queued, "
          f"filled in {time.perf_counter() - t0:.1f} s", flush=True)
    templates = {"plain": server, "full": hooked, "post": post_only}
    return templates, client, one, configs, {"incoming": incoming, "queued": queued}


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


def push_cases(b: Bench, sink: Sink, templates, client, one, configs):
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
            if spool is None:
                return True
            # The detached deliverer: wait (untimed) until it has delivered and is done with
            # the queue, so that it never runs during the next timed push.
            if not sink.wait_for(expected["count"], 15.0):
                return False
            deadline = time.monotonic() + 5.0
            while queued_jobs(spool) and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(0.01)
            return True

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
            print(f"{label}: no figures (pushes failed)  target <= {RATIO_TARGET:.2f}: MISS")
            continue
        ratio = med(mine["wall"]) / med(plain["wall"])
        cpu_ratio = med(mine["cpu"]) / med(plain["cpu"])
        spooling = med(paired(mine["wall"], without["wall"])) if without["wall"] else float("nan")
        print(f"{label}: ratio {ratio:.2f} (CPU {cpu_ratio:.2f}); spooling adds {spooling:+.1f} ms over the "
              f"same hooks without extensions  target <= {RATIO_TARGET:.2f}: {verdict(ratio <= RATIO_TARGET)}"
              f" (by CPU: {verdict(cpu_ratio <= RATIO_TARGET)})")


# --------------------------------------------------------------------------- (a) throughput

DRAIN_VARIANTS = [
    ("queued-disk", "queued jobs, spool on disk", "queued", "drain-disk"),
    ("queued-tmpfs", "queued jobs, spool on tmpfs", "queued", "drain-tmpfs"),
    ("incoming-disk", "fan-out + send, spool on disk", "incoming", "drain-disk"),
    ("incoming-tmpfs", "fan-out + send, spool on tmpfs", "incoming", "drain-tmpfs"),
]


def drain_cases(b: Bench, sink: Sink, configs, templates, busy: dict):
    a = b.args
    out = []
    for key, _label, template, config in DRAIN_VARIANTS:
        slot = (a.disk if config == "drain-disk" else b.work) / "spool-slot"
        expected = {}

        def prepare(template=templates[template], slot=slot, key=key):
            fresh_copy(template, slot)
            if key.endswith("disk"):
                os.sync()  # the copy's dirty pages are not the deliverer's to write back
            expected["count"] = sink.count + a.events
            expected["busy"] = sink.busy

        def run(config=configs[config]):
            return timed([str(a.pushgate), "--config", str(config), "deliver", "--once"], env=b.env)

        def verify(slot=slot, key=key):
            busy.setdefault(key, []).append(sink.busy - expected["busy"])
            return sink.count == expected["count"] and queued_jobs(slot) == 0 and incoming_events(slot) == 0

        out.append(Case(f"drain {a.events}", key, run, prepare=prepare, verify=verify))
    return out


def drain_report(results, busy, a):
    scenario = f"drain {a.events}"
    print(f"\n(a) deliverer throughput: one `pushgate deliver --once` draining {a.events} events into a "
          f"local HTTP sink (204), medians of {a.drain_rounds} rounds:")
    head = (f"{'spool':<32} {'wall':>9} {'events/s':>9} {'per event':>10} {'cpu':>9} {'cpu/event':>10} "
            f"{'sink busy':>10}")
    print(head)
    print("-" * len(head))
    rates = {}
    for key, label, *_ in DRAIN_VARIANTS:
        mine = results[(scenario, key)]
        if not mine["wall"]:
            print(f"{label:<32} (every run failed: no figures)")
            continue
        wall, cpu = med(mine["wall"]), med(mine["cpu"])
        rates[key] = a.events / (wall / 1000)
        sink_share = med(busy.get(key, [0.0])) * 1000 / wall
        print(f"{label:<32} {wall:7.0f}ms {rates[key]:9.0f} {wall / a.events:8.2f}ms {cpu:7.0f}ms "
              f"{cpu / a.events:8.2f}ms {sink_share:9.0%}")
    print("'sink busy' = time the sink spent handling requests / wall time (the sink is not the "
          "bottleneck while it is well below 100%); CPU = the deliverer's user+sys.")
    for key, label in (("queued-disk", "fsync on: spool on disk"), ("queued-tmpfs", "spool on tmpfs")):
        if key in rates:
            print(f"throughput, {label}: {rates[key]:.0f} events/s  target >= {RATE_TARGET:.0f} events/s: "
                  f"{verdict(rates[key] >= RATE_TARGET)}")


# --------------------------------------------------------------------------- main

def disk_dir(a):
    """A directory on a real filesystem for the spools whose fsyncs must cost what they cost."""
    base = Path(tempfile.mkdtemp(prefix="pushgate-bench-disk-", dir=a.disk_dir))
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(base)], capture_output=True, text=True).stdout.strip()
    return base, fs


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(p, rounds=25, quick_rounds=3)
    p.add_argument("--events", type=int, help="events in the spool drained in (a) (default 1000)")
    p.add_argument("--drain-rounds", type=int, help="timed rounds of (a) (default 5; 1 with --quick)")
    p.add_argument("--history", type=int, help="commits already on the server (default 10000)")
    p.add_argument("--tags", type=int, default=20, help="annotated tags spread over the history (default 20)")
    p.add_argument("--disk-dir", default="/var/tmp", help="where the on-disk spools go (default /var/tmp)")
    p.add_argument("--only", choices=["a", "b"], help="run only (a) throughput or (b) post-receive cost")
    a = p.parse_args()
    finish_common_options(a)
    a.events = a.events or (100 if a.quick else 1000)
    a.drain_rounds = a.drain_rounds if a.drain_rounds is not None else (1 if a.quick else 5)
    a.history = a.history or (2000 if a.quick else 10_000)
    a.disk, fs = disk_dir(a)
    sink = Sink()

    def body(work, where):
        b = Bench(a, work)
        print(f"pushgate delivery bench: {a.pushgate}, {b.run('--version').strip()}, {os.cpu_count()} CPUs, "
              f"scratch {where}, disk spools in {a.disk} ({fs}), sink {sink.url}", flush=True)
        if fs in ("tmpfs", "ramfs"):
            print(f"warning: {a.disk} is on {fs}: fsync costs nothing there (pass --disk-dir)")
        servers, client, one, configs, spools = build(b, sink, a.disk)
        failures = []
        if a.only != "a":
            print("(b) post-receive cost:", flush=True)
            load_before = os.getloadavg()[0]
            results, failed = interleaved(push_cases(b, sink, servers, client, one, configs),
                                          a.rounds, a.warmup, a.seed)
            push_load = (load_before, os.getloadavg()[0])
            failures += failed
        if a.only != "b":
            print("(a) deliverer throughput:", flush=True)
            busy = {}
            load_before = os.getloadavg()[0]
            drained, failed = interleaved(drain_cases(b, sink, configs, spools, busy), a.drain_rounds,
                                          min(a.warmup, 1), a.seed)
            drain_load = (load_before, os.getloadavg()[0])
            failures += failed
            drain_report(drained, busy, a)
            print(load_line(*drain_load))
        if a.only != "a":
            push_report(results, a)
            print(load_line(*push_load))
        print_failures(failures)
        if a.quick:
            print("quick mode: reduced sizes and rounds; PASS/MISS is only indicative")

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
