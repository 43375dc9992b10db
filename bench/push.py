#!/usr/bin/env python3
"""Push benchmark for pushgate: real `git push`es through pushgate's hooks, fully configured
(ref rules, a path rule, [limits] max_blob_size, one `post` script connector), vs the same
push into a server without hooks and into one whose hooks do nothing, measured in the same run.

Scenarios (sizes are options; --quick shrinks them for a smoke run):
  s1  one new commit pushed to main of a server with ~10,000 commits of history
  s2  1000 new commits pushed to main at once
  s3  2000 new branches (at existing commits) in one push
  s4  10,000 new branches (at existing commits) in one push
  s5  10,000 new commits pushed to main at once

Variants: no hooks; "cat hooks" (pre- and post-receive `#!/bin/sh` + `exec cat >/dev/null`:
the floor any pair of hooks costs); pushgate (`pushgate install`: hooks/pre-receive and
hooks/post-receive are symlinks to the binary); optionally a second binary (--compare).
With the post connector, pre-receive records each accepted push into the spool (on the
scratch tmpfs), post-receive confirms it and starts a detached `deliver --once` that runs the
script once the receive-pack has exited. This script is the child subreaper of what it
starts, so those deliverers are re-parented to it: after each push it waits for them
(untimed) and checks the event was delivered, so no deliverer outlives its push. With
--watch, one `pushgate deliver --watch` runs for the whole run instead (post-receive only
wakes it) and the script waits until the spool is empty after each push.

Every timed push goes into a freshly copied server repository (copied in an untimed step).
Within a round, the (scenario, variant) pairs run in a shuffled order. Reported: medians of
wall time and of CPU time of the process tree (getrusage(RUSAGE_CHILDREN) deltas: git push,
receive-pack, pack/index, hooks; not the detached deliverer), the ratio to no hooks, the
added time (median of the paired per-round differences) and that as a multiple of what the
cat hooks add. A report, not a test: it never fails on a missed goal.

Standard library only. Run as root to get a private tmpfs (else /dev/shm, else $TMPDIR).
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import (ROOT, Bench, WatchDeliverer, become_subreaper, build_server, commit_stream, full_config, goal,
                    iqr, keep_message, load_line, project_files, reap_children, renice, scratch_dir, spool_backlog,
                    spool_delivered, timed_push)

PUSHER = "bob"  # a dev: allowed on main (fast-forward) and branches; path rules evaluated
FLOOR_GOAL = 1.5  # pushgate's added time <= 1.5x what the do-nothing hooks add, every scenario

# Variants: key -> label. "floor" and "compare" are optional.
LABELS = {"plain": "no hooks", "floor": "cat hooks", "hooks": "pushgate", "compare": "compare"}


# --------------------------------------------------------------------------- fixtures

def build_fixtures(b: Bench):
    a = b.args
    rng = random.Random(1234)
    w = b.work
    files = project_files()

    t0 = time.perf_counter()
    server = w / "server.git"
    history = build_server(b, server, a.history, a.tags, rng, files)
    tip = history[-1]

    # Client for scenarios 1, 2 and 5: the server's history plus branches `one`, `many` and
    # `huge`, each on top of the server's main.
    client = w / "client.git"
    shutil.copytree(server, client, symlinks=True)
    last = 1_600_000_000 + a.history * 600
    s1, mark = commit_stream("refs/heads/one", 100_000, 1, tip, files, rng, last, "src/feature_one",
                             allow_deploy=False)
    s2, mark = commit_stream("refs/heads/many", mark, a.commits, tip, files, rng, last, "src/feature_many",
                             allow_deploy=False, big_every=max(1, a.commits // 4))
    stream = s1 + s2
    if "s5" in a.scenarios:
        s5, _ = commit_stream("refs/heads/huge", mark, a.commits_lots, tip, files, rng, last, "src/feature_huge",
                              allow_deploy=False, big_every=max(1, a.commits_lots // 4))
        stream += s5
    b.run("fast-import", "--quiet", cwd=client, input=stream)
    b.run("repack", "-a", "-d", "-q", cwd=client)
    b.run("commit-graph", "write", "--reachable", cwd=client)
    one = b.run("rev-parse", "refs/heads/one", cwd=client).strip()
    many = b.run("rev-parse", "refs/heads/many", cwd=client).strip()
    huge = b.run("rev-parse", "refs/heads/huge", cwd=client).strip() if "s5" in a.scenarios else None

    # Clients for scenarios 3 and 4: branches at existing commits spread over the history.
    def refs_client(name: str, prefix: str, count: int) -> Path:
        repo = w / name
        shutil.copytree(server, repo, symlinks=True)
        lines = []
        for i in range(count):
            at = history[(i * len(history)) // count]
            lines.append(f"create refs/heads/{prefix}/b{i:05} {at}\n")
        b.run("update-ref", "--stdin", cwd=repo, input="".join(lines).encode())
        b.run("pack-refs", "--all", cwd=repo)
        return repo

    few = refs_client("refs-few.git", "feature", a.refs_few)
    lots = refs_client("refs-lots.git", "mirror", a.refs_lots)

    # The hooked server template: the same repository with pushgate installed.
    hooked = w / "server-hooked.git"
    shutil.copytree(server, hooked, symlinks=True)
    b.install(hooked)
    # Same config change on the plain template, so the variants differ only in hooks.
    b.run("config", "receive.advertisePushOptions", "true", cwd=server)
    templates = {"plain": server, "hooks": hooked}
    if a.compare:
        # The same hooks from another pushgate binary (before/after an optimisation).
        other = w / "server-compare.git"
        shutil.copytree(server, other, symlinks=True)
        proc = subprocess.run([str(a.compare), "install", str(other)], env=b.env, capture_output=True)
        if proc.returncode != 0:
            sys.exit(f"bench: {a.compare} install failed:\n{proc.stderr.decode(errors='replace')}")
        templates["compare"] = other
    if not a.no_floor:
        # The floor any hook pays: git spawning pre- and post-receive and feeding them the
        # ref lines; the hooks only drain stdin (sh + cat).
        floor = w / "server-cat.git"
        shutil.copytree(server, floor, symlinks=True)
        for name in ("pre-receive", "post-receive"):
            hook = floor / "hooks" / name
            hook.write_text("#!/bin/sh\nexec cat >/dev/null\n")
            hook.chmod(0o755)
        templates["floor"] = floor
    for name in ("pre-receive", "post-receive"):
        if not (hooked / "hooks" / name).exists():
            sys.exit(f"bench: pushgate install left no hooks/{name} in {hooked}")

    # The full configuration: rules, path rules, [limits], [audit] and one post script
    # connector with its spool on the scratch tmpfs. One spool for both binaries: the
    # pushes run one at a time and each push's deliverer is done before the next push.
    config = w / "pushgate.toml"
    config.write_text(full_config(w, name="push"))
    b.check_config(config)
    spool = w / "spool-push"

    size = sum(f.stat().st_size for f in server.rglob("*") if f.is_file())
    print(f"fixtures: {len(history)} commits, {a.tags} tags, server {size / 1e6:.1f} MB, "
          f"built in {time.perf_counter() - t0:.1f} s", flush=True)

    def count_refs(prefix, expected):
        def verify(repo: Path) -> bool:
            out = b.run("for-each-ref", "--format=x", prefix, cwd=repo)
            return out.count("x") == expected
        return verify

    def main_is(expected):
        return lambda repo: b.run("rev-parse", "refs/heads/main", cwd=repo).strip() == expected

    # (key, label, client, refspec, verify, goal kind, goal value)
    scenarios = [
        ("s1", "1 commit -> main", client, "refs/heads/one:refs/heads/main", main_is(one), "ratio", 1.30),
        ("s2", f"{a.commits} commits -> main", client, "refs/heads/many:refs/heads/main", main_is(many),
         "ratio", 1.20),
        ("s3", f"{a.refs_few} new refs", few, "refs/heads/feature/*:refs/heads/feature/*",
         count_refs("refs/heads/feature/", a.refs_few), "ratio", 1.15),
        ("s4", f"{a.refs_lots} new refs", lots, "refs/heads/mirror/*:refs/heads/mirror/*",
         count_refs("refs/heads/mirror/", a.refs_lots), "added_ms", 50.0),
    ]
    if huge:
        scenarios.append(("s5", f"{a.commits_lots} commits -> main", client, "refs/heads/huge:refs/heads/main",
                          main_is(huge), "added_ms", 150.0))
    return templates, scenarios, config, spool


# --------------------------------------------------------------------------- measuring

def measure(b: Bench, templates, scenarios, config: Path, spool: Path):
    a = b.args
    chosen = [s for s in scenarios if s[0] in a.scenarios]
    # results[(scenario, variant)][metric] = {round: value}: differences pair by round
    results = {(s[0], v): {"wall": {}, "cpu": {}} for s in chosen for v in templates}
    deliverers = {(s[0], v): [] for s in chosen for v in templates}  # (count, cpu ms) per push
    failures, strays = [], []
    rng = random.Random(a.seed)
    slot = b.work / "slot.git"
    total = a.warmup + a.rounds
    watcher = WatchDeliverer(a.pushgate, config, b.env, spool) if a.watch else None
    try:
        for rnd in range(total):
            warm = rnd < a.warmup
            order = [(s, v) for s in chosen for v in templates]
            rng.shuffle(order)
            t_round = time.perf_counter()
            for (key, label, client, refspec, verify, *_), variant in order:
                if slot.exists():
                    shutil.rmtree(slot)
                subprocess.run(["cp", "-a", str(templates[variant]), str(slot)], check=True)
                hooked = variant in ("hooks", "compare")
                delivered = spool_delivered(spool)
                code, err, wall, cpu = timed_push(b, client, slot, refspec)
                # Untimed: the push's deliverer has to be done before anything else runs.
                if watcher:
                    drained, n, dcpu = watcher.wait_idle(), 0, 0.0
                else:
                    n, dcpu, drained = reap_children(60.0)
                    drained = drained and not spool_backlog(spool)
                ok = code == 0 and verify(slot)
                if ok and hooked and not (drained and spool_delivered(spool) == delivered + 1):
                    ok, err = False, (f"{err}\nthe push's event was not delivered (deliverers reaped: {n}, "
                                      f"backlog {spool_backlog(spool)}, delivered {spool_delivered(spool) - delivered})")
                if not hooked and n:
                    strays.append((key, variant, n))
                if not ok:
                    failures.append((key, variant, code, err.strip()))
                    continue
                if not warm:
                    results[(key, variant)]["wall"][rnd] = wall
                    results[(key, variant)]["cpu"][rnd] = cpu
                    if hooked:
                        deliverers[(key, variant)].append((n, dcpu))
            what = "warm-up" if warm else f"round {rnd - a.warmup + 1}/{a.rounds}"
            print(f"  {what} done in {time.perf_counter() - t_round:.1f} s", flush=True)
    finally:
        if watcher:
            watcher.stop()
    if slot.exists():
        shutil.rmtree(slot)
    if strays:
        print(f"note: {sum(n for *_, n in strays)} stray process(es) reaped after pushes without pushgate: "
              f"{strays[:5]}")
    return chosen, results, deliverers, failures


def report(chosen, results, deliverers, failures, a):
    med = statistics.median
    floor = not a.no_floor
    hooked = ["hooks"] + (["compare"] if a.compare else [])

    def diffs(x, y):
        return [x[r] - y[r] for r in x if r in y]

    verdicts = {}
    for metric, title in (("wall", "wall time"), ("cpu", "CPU time of the process tree (user+sys)")):
        print(f"\n{title}, medians of {a.rounds} rounds:")
        head = (f"{'scenario':<22} {'variant':<9} {'no hooks':>9} " + (f"{'cat hooks':>9} " if floor else "")
                + f"{'hooks':>9} {'ratio':>6} {'added':>8} {'IQR':>6} "
                + (f"{'floor added':>11} {'x floor':>7} " if floor else "") + " goals")
        print(head)
        print("-" * (len(head) + 40))
        for key, label, _client, _refspec, _verify, kind, limit in chosen:
            plain = results[(key, "plain")][metric]
            cat = results[(key, "floor")][metric] if floor else {}
            for variant in hooked:
                mine = results[(key, variant)][metric]
                name = LABELS[variant]
                if not plain or not mine:
                    print(f"{label:<22} {name:<9} (pushes failed: no figures)")
                    if metric == "wall":
                        verdicts[(label, variant)] = "FAIL (pushes failed)"
                    continue
                ratio = med(mine.values()) / med(plain.values())
                added = med(diffs(mine, plain))
                if kind == "ratio":
                    met, target = ratio <= limit, f"ratio <= {limit:.2f}"
                else:
                    met, target = added <= limit, f"added <= {limit:.0f} ms"
                goals = [f"{target}: {goal(met)}"]
                line = f"{label:<22} {name:<9} {med(plain.values()):7.1f}ms "
                if floor:
                    line += f"{med(cat.values()):7.1f}ms " if cat else f"{'-':>9} "
                line += f"{med(mine.values()):7.1f}ms {ratio:6.2f} {added:+6.1f}ms {iqr(diffs(mine, plain)):6.1f} "
                if floor:
                    floor_added = med(diffs(cat, plain)) if cat else float("nan")
                    # A floor at or below zero is noise (the cat hooks measured no slower than
                    # no hooks): no multiple, and the goal holds only if pushgate added nothing.
                    met = added <= FLOOR_GOAL * floor_added or added <= 0
                    shown = f"{added / floor_added:6.2f}x" if floor_added > 0 else f"{'n/a':>7}"
                    line += f"{floor_added:+9.1f}ms {shown} "
                    goals.append(f"x floor <= {FLOOR_GOAL:.1f}: {goal(met)}"
                                 + ("" if floor_added > 0 else " (floor <= 0: noise)"))
                line += " " + "; ".join(goals)
                print(line)
                if metric == "wall":
                    verdicts[(label, variant)] = ", ".join(goals)
    print(f"\n'added' = median of the per-round differences hooks - no hooks (the hook time the pusher waits "
          f"for), 'IQR' their interquartile range"
          + ("; 'floor added' = the same for the cat hooks (hooks that only drain stdin: git's own cost of "
             "running a pre-/post-receive pair); 'x floor' = added / floor added." if floor else "."))
    # The detached deliverers: not in the figures above (the pusher does not wait for them).
    print("\ndeliverers per push (after the push, untimed): " + (
        "one `deliver --watch` for the whole run (not measured)" if a.watch else "; ".join(
            f"{label} {LABELS[v]}: {med([n for n, _ in deliverers[(key, v)]]):.0f} process(es), "
            f"{med([c for _, c in deliverers[(key, v)]]):.1f} ms CPU"
            for key, label, *_ in chosen for v in hooked if deliverers[(key, v)])))
    if a.compare:
        print(f"\n--compare {a.compare} (hooks from that binary, same config), medians:")
        print(f"{'scenario':<22} {'pushgate':>9} {'compare':>9} {'compare-pushgate wall':>22} {'cpu':>8}")
        for key, label, *_ in chosen:
            mine, other = results[(key, "hooks")], results[(key, "compare")]
            if not mine["wall"] or not other["wall"]:
                print(f"{label:<22} (pushes failed)")
                continue
            dw = med(diffs(other["wall"], mine["wall"]))
            dc = med(diffs(other["cpu"], mine["cpu"]))
            print(f"{label:<22} {med(mine['wall'].values()):7.1f}ms {med(other['wall'].values()):7.1f}ms "
                  f"{dw:+20.1f}ms {dc:+6.1f}ms")
    print("\ngoals (wall time):")
    for (label, variant), v in verdicts.items():
        print(f"  {label:<22} {LABELS[variant]:<9} {v}")
    if a.quick:
        print("quick mode: reduced sizes and rounds; PASS/FAIL is only indicative")
    if failures:
        print(f"\n{len(failures)} push(es) failed and were left out:")
        seen = set()
        for key, variant, code, err in failures:
            if (key, variant) not in seen:
                seen.add((key, variant))
                print(f"  {key} {variant}: exit {code}: {err[:500]}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, help="timed rounds (default 7; 2 with --quick)")
    p.add_argument("--warmup", type=int, help="untimed rounds first (default 1; 0 with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, 2 rounds")
    p.add_argument("--history", type=int, help="commits already on the server (default 10000)")
    p.add_argument("--tags", type=int, default=20, help="annotated release tags spread over the history (default 20)")
    p.add_argument("--commits", type=int, help="new commits in scenario 2 (default 1000)")
    p.add_argument("--commits-lots", type=int, help="new commits in scenario 5 (default 10000)")
    p.add_argument("--refs-few", type=int, help="new refs in scenario 3 (default 2000)")
    p.add_argument("--refs-lots", type=int, help="new refs in scenario 4 (default 10000)")
    p.add_argument("--scenarios", default="s1,s2,s3,s4,s5", help="comma-separated subset of s1,s2,s3,s4,s5")
    p.add_argument("--pushgate", type=Path, default=ROOT / "target/release/pushgate",
                   help="the binary to install as hooks (default target/release/pushgate)")
    p.add_argument("--compare", type=Path, help="a second pushgate binary, measured as an extra variant")
    p.add_argument("--watch", action="store_true",
                   help="run one `deliver --watch` for the whole run instead of a deliverer per push")
    p.add_argument("--seed", type=int, default=7, help="seed of the per-round shuffle")
    p.add_argument("--no-tmpfs", action="store_true", help="use the normal temp dir even as root")
    p.add_argument("--no-floor", action="store_true", help="skip the 'cat hooks' variant (hooks that only drain stdin)")
    p.add_argument("--keep", action="store_true", help="keep the scratch dir (and its tmpfs) for profiling")
    p.add_argument("--nice", type=int, default=0,
                   help="run the script and every push at this niceness (e.g. -10 as root on a shared machine)")
    a = p.parse_args()
    quick = a.quick
    a.rounds = a.rounds if a.rounds is not None else (2 if quick else 7)
    a.warmup = a.warmup if a.warmup is not None else (0 if quick else 1)
    a.history = a.history or (2000 if quick else 10_000)
    a.commits = a.commits or (200 if quick else 1000)
    a.commits_lots = a.commits_lots or (2000 if quick else 10_000)
    a.refs_few = a.refs_few or (400 if quick else 2000)
    a.refs_lots = a.refs_lots or (2000 if quick else 10_000)
    a.scenarios = set(a.scenarios.split(","))
    a.pushgate = a.pushgate.resolve()
    if a.compare:
        a.compare = a.compare.resolve()
        if not os.access(a.compare, os.X_OK):
            sys.exit(f"bench: --compare {a.compare} is not an executable")
    if not os.access(a.pushgate, os.X_OK):
        sys.exit(f"bench: {a.pushgate} not found: run `cargo build --release` first (or pass --pushgate)")
    renice(a.nice)
    if not a.watch and not become_subreaper():
        sys.exit("bench: prctl(PR_SET_CHILD_SUBREAPER) failed: cannot wait for the detached deliverers "
                 "(use --watch)")

    work, where, cleanup = scratch_dir(a)
    try:
        b = Bench(a, work, pusher=PUSHER)
        version = b.run("--version").strip()
        print(f"pushgate bench: {a.pushgate}, {version}, {os.cpu_count()} CPUs, scratch {where}", flush=True)
        templates, scenarios, config, spool = build_fixtures(b)
        print("deliverers: " + ("one `pushgate deliver --watch` for the whole run" if a.watch else
                                "one detached `deliver --once` per push (post-receive starts it; waited for "
                                "after each push, untimed)"), flush=True)
        load_before = os.getloadavg()[0]
        chosen, results, deliverers, failures = measure(b, templates, scenarios, config, spool)
        load_after = os.getloadavg()[0]
        report(chosen, results, deliverers, failures, a)
        print(load_line(load_before, load_after))
    finally:
        if a.keep:
            print(f"\n(PUSHGATE_CONFIG={work / 'pushgate.toml'}) " + keep_message(work))
        else:
            cleanup()


if __name__ == "__main__":
    main()
