#!/usr/bin/env python3
"""Push benchmark for pushgate: real `git push`es through pushgate's hooks vs. the same push
into a server repository without hooks, measured in the same run.

Scenarios (sizes are options; --quick shrinks them for a smoke run):
  1. one new commit pushed to main of a server with ~10,000 commits of history
  2. 1000 new commits pushed to main at once
  3. 2000 new branches (at existing commits) in one push
  4. 10,000 new branches (at existing commits) in one push

Every timed push goes into a freshly copied server repository (copied in an untimed step).
Within a round, the (scenario, variant) pairs run in a shuffled order. Reported: medians of
wall time and of CPU time of the process tree (getrusage(RUSAGE_CHILDREN) deltas: git push,
receive-pack, pack/index, hooks), their ratio, and the added hook time (median of the paired
per-round differences). A report, not a test: it never fails on a missed target.

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

from common import RULES_CONFIG as CONFIG
from common import ROOT, Bench, build_server, commit_stream, iqr, project_files, scratch_dir, timed_push

PUSHER = "bob"  # a dev: allowed on main (fast-forward) and branches; path rules evaluated


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

    # Client for scenarios 1 and 2: the server's history plus branches `one` and `many`.
    client = w / "client.git"
    shutil.copytree(server, client, symlinks=True)
    last = 1_600_000_000 + a.history * 600
    s1, mark = commit_stream("refs/heads/one", 100_000, 1, tip, files, rng, last, "src/feature_one",
                             allow_deploy=False)
    s2, _ = commit_stream("refs/heads/many", mark, a.commits, tip, files, rng, last, "src/feature_many",
                          allow_deploy=False, big_every=max(1, a.commits // 4))
    b.run("fast-import", "--quiet", cwd=client, input=s1 + s2)
    b.run("repack", "-a", "-d", "-q", cwd=client)
    b.run("commit-graph", "write", "--reachable", cwd=client)
    one = b.run("rev-parse", "refs/heads/one", cwd=client).strip()
    many = b.run("rev-parse", "refs/heads/many", cwd=client).strip()

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
    proc = subprocess.run([str(a.pushgate), "install", str(hooked)], env=b.env, capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"bench: pushgate install failed:\n{proc.stderr.decode(errors='replace')}")
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

    (w / "pushgate.toml").write_text(CONFIG.format(audit=w / "audit.jsonl"))
    proc = subprocess.run([str(a.pushgate), "check"], env=b.env, capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"bench: the benchmark config does not validate:\n{proc.stderr.decode(errors='replace')}")

    size = sum(f.stat().st_size for f in server.rglob("*") if f.is_file())
    print(f"fixtures: {len(history)} commits, {a.tags} tags, server {size / 1e6:.1f} MB, "
          f"built in {time.perf_counter() - t0:.1f} s", flush=True)

    def count_refs(prefix):
        def verify(repo: Path) -> bool:
            out = b.run("for-each-ref", "--format=x", prefix, cwd=repo)
            return out.count("x") == (a.refs_few if "feature" in prefix else a.refs_lots)
        return verify

    def main_is(expected):
        return lambda repo: b.run("rev-parse", "refs/heads/main", cwd=repo).strip() == expected

    return templates, [
        # (key, label, client, refspec, verify, target kind, target value)
        ("s1", "1 commit -> main", client, f"refs/heads/one:refs/heads/main", main_is(one), "ratio", 1.30),
        ("s2", f"{a.commits} commits -> main", client, "refs/heads/many:refs/heads/main", main_is(many), "ratio", 1.30),
        ("s3", f"{a.refs_few} new refs", few, "refs/heads/feature/*:refs/heads/feature/*",
         count_refs("refs/heads/feature/"), "ratio", 1.20),
        ("s4", f"{a.refs_lots} new refs", lots, "refs/heads/mirror/*:refs/heads/mirror/*",
         count_refs("refs/heads/mirror/"), "added_ms", 150.0),
    ]


# --------------------------------------------------------------------------- measuring

def measure(b: Bench, templates, scenarios):
    a = b.args
    chosen = [s for s in scenarios if s[0] in a.scenarios]
    # results[(scenario, variant)][metric] = {round: value}: differences pair by round
    results = {(s[0], v): {"wall": {}, "cpu": {}} for s in chosen for v in templates}
    failures = []
    rng = random.Random(a.seed)
    slot = b.work / "slot.git"
    total = a.warmup + a.rounds
    for rnd in range(total):
        warm = rnd < a.warmup
        order = [(s, v) for s in chosen for v in templates]
        rng.shuffle(order)
        t_round = time.perf_counter()
        for (key, label, client, refspec, verify, *_), variant in order:
            if slot.exists():
                shutil.rmtree(slot)
            subprocess.run(["cp", "-a", str(templates[variant]), str(slot)], check=True)
            code, err, wall, cpu = timed_push(b, client, slot, refspec)
            ok = code == 0 and verify(slot)
            if not ok:
                failures.append((key, variant, code, err.strip()))
                continue
            if not warm:
                results[(key, variant)]["wall"][rnd] = wall
                results[(key, variant)]["cpu"][rnd] = cpu
        what = "warm-up" if warm else f"round {rnd - a.warmup + 1}/{a.rounds}"
        print(f"  {what} done in {time.perf_counter() - t_round:.1f} s", flush=True)
    if slot.exists():
        shutil.rmtree(slot)
    return chosen, results, failures


def report(chosen, results, failures, a):
    med = statistics.median
    floor = not a.no_floor
    verdicts = {}
    for metric, title in (("wall", "wall time"), ("cpu", "CPU time of the process tree (user+sys)")):
        print(f"\n{title}, medians of {a.rounds} rounds:")
        head = f"{'scenario':<18} {'no hooks':>9} " + (f"{'cat hooks':>9} " if floor else "") + \
            f"{'pushgate':>9} {'ratio':>6} {'added':>8} {'IQR':>6} " + (f"{'over cat':>8} " if floor else "") + " target"
        print(head)
        print("-" * (len(head) + 28))
        for key, label, _client, _refspec, _verify, kind, limit in chosen:
            plain, hooks = results[(key, "plain")][metric], results[(key, "hooks")][metric]
            cat = results[(key, "floor")][metric] if floor else {}
            if not plain or not hooks:
                print(f"{label:<18} (pushes failed: no figures)")
                verdicts.setdefault(label, "MISS (pushes failed)")
                continue

            def diffs(x, y):
                return [x[r] - y[r] for r in x if r in y]

            ratio = med(hooks.values()) / med(plain.values())
            added = med(diffs(hooks, plain))
            if kind == "ratio":
                met, target = ratio <= limit, f"ratio <= {limit:.2f}"
            else:
                met, target = added < limit, f"added < {limit:.0f} ms"
            verdict = "PASS" if met else "MISS"
            if metric == "wall":
                verdicts[label] = verdict
            line = f"{label:<18} {med(plain.values()):7.1f}ms "
            if floor:
                line += f"{med(cat.values()):7.1f}ms " if cat else f"{'-':>9} "
            line += f"{med(hooks.values()):7.1f}ms {ratio:6.2f} {added:+6.1f}ms {iqr(diffs(hooks, plain)):6.1f} "
            if floor:
                over = diffs(hooks, cat)
                line += f"{med(over):+6.1f}ms " if over else f"{'-':>8} "
            line += f" {target}: {verdict}" + ("" if metric == "wall" else " (by CPU)")
            print(line)
    print(f"\n'added' = median of the per-round differences pushgate - no hooks (the hook time the pusher "
          f"waits for), 'IQR' their interquartile range;" + (" 'over cat' = pushgate - hooks that only drain stdin (what pushgate adds "
                            "beyond git's own cost of running any hook)." if floor else ""))
    if a.compare:
        print(f"\n--compare {a.compare} (hooks from that binary, same config), medians:")
        print(f"{'scenario':<18} {'pushgate':>9} {'compare':>9} {'compare-pushgate wall':>22} {'cpu':>8}")
        for key, label, *_ in chosen:
            hooks, other = results[(key, "hooks")], results[(key, "compare")]
            if not hooks["wall"] or not other["wall"]:
                print(f"{label:<18} (pushes failed)")
                continue
            dw = med([other["wall"][r] - hooks["wall"][r] for r in other["wall"] if r in hooks["wall"]])
            dc = med([other["cpu"][r] - hooks["cpu"][r] for r in other["cpu"] if r in hooks["cpu"]])
            print(f"{label:<18} {med(hooks['wall'].values()):7.1f}ms {med(other['wall'].values()):7.1f}ms "
                  f"{dw:+20.1f}ms {dc:+6.1f}ms")
    print("targets (wall): " + ", ".join(f"{label}: {v}" for label, v in verdicts.items()))
    if a.quick:
        print("quick mode: reduced sizes and rounds; PASS/MISS is only indicative")
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
    p.add_argument("--refs-few", type=int, help="new refs in scenario 3 (default 2000)")
    p.add_argument("--refs-lots", type=int, help="new refs in scenario 4 (default 10000)")
    p.add_argument("--scenarios", default="s1,s2,s3,s4", help="comma-separated subset of s1,s2,s3,s4")
    p.add_argument("--pushgate", type=Path, default=ROOT / "target/release/pushgate",
                   help="the binary to install as hooks (default target/release/pushgate)")
    p.add_argument("--compare", type=Path, help="a second pushgate binary, measured as an extra variant")
    p.add_argument("--seed", type=int, default=7, help="seed of the per-round shuffle")
    p.add_argument("--no-tmpfs", action="store_true", help="use the normal temp dir even as root")
    p.add_argument("--no-floor", action="store_true", help="skip the 'cat hooks' variant (hooks that only drain stdin)")
    p.add_argument("--keep", action="store_true", help="keep the scratch dir (and its tmpfs) for profiling")
    a = p.parse_args()
    quick = a.quick
    a.rounds = a.rounds if a.rounds is not None else (2 if quick else 7)
    a.warmup = a.warmup if a.warmup is not None else (0 if quick else 1)
    a.history = a.history or (2000 if quick else 10_000)
    a.commits = a.commits or (200 if quick else 1000)
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

    work, where, cleanup = scratch_dir(a)
    try:
        b = Bench(a, work)
        version = b.run("--version").strip()
        print(f"pushgate bench: {a.pushgate}, {version}, {os.cpu_count()} CPUs, scratch {where}", flush=True)
        templates, scenarios = build_fixtures(b)
        load_before = os.getloadavg()[0]
        chosen, results, failures = measure(b, templates, scenarios)
        load_after = os.getloadavg()[0]
        report(chosen, results, failures, a)
        busy = max(load_before, load_after) > 0.7 * (os.cpu_count() or 1) / 2 + 0.3
        print(f"load average (1 min) {load_before:.2f} before, {load_after:.2f} after the timed rounds"
              + ("  -- the machine was busy: wall figures are inflated, trust the CPU table more" if busy else ""))
    finally:
        if a.keep:
            print(f"\nkept {work} (PUSHGATE_CONFIG={work / 'pushgate.toml'}); remove it with: "
                  f"{'umount ' + str(work) + ' && ' if work.name == 'mnt' else ''}rm -rf {work.parent if work.name == 'mnt' else work}")
        else:
            cleanup()


if __name__ == "__main__":
    main()
