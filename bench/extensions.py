#!/usr/bin/env python3
"""Extensions benchmark for pushgate: what `pre` extensions add to a push. Real `git push`es
of one new commit into a server with ~10,000 commits of history, in four variants measured in
the same run:

  no hooks             the same server without hooks (the baseline)
  pushgate             pushgate's hooks, rules only (no [[extension]])
  pushgate + 1 pre     the same with one no-op script `pre` extension (command = ["/bin/true"])
  pushgate + 3 pre     the same with three of them (they run in parallel)

Target (issue 3): the three no-op extensions add < 10 ms to a 1-commit push, that is
median(pushgate + 3 pre) - median(pushgate) < 10 ms. A second scenario (100 new commits)
shows how building the event the extensions read grows with the push; it has no target.

Every timed push goes into a freshly copied server (untimed); variants are shuffled within
each round. A report, not a test: it never fails on a missed target. Standard library only.
"""

import argparse
import os
import random
import shutil
import time

from common import (RULES_CONFIG, Bench, Case, add_common_options, build_server, commit_stream,
                    finish_common_options, fresh_copy, in_scratch, interleaved, load_line, med, paired,
                    print_failures, project_files, tree_size, iqr, timed_push, variant_table, verdict)

TARGET_MS = 10.0

NOOP_EXTENSION = """
[[extension]]
name = "noop{i}"
type = "script"
phase = "pre"
command = ["/bin/true"]
"""

VARIANTS = [
    ("plain", "no hooks"),
    ("rules", "pushgate (rules, no extensions)"),
    ("ext1", "pushgate + 1 no-op pre extension"),
    ("ext3", "pushgate + 3 no-op pre extensions"),
]


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
    s1, mark = commit_stream("refs/heads/one", 100_000, 1, tip, files, rng, last, "src/feature_one",
                             allow_deploy=False)
    s2, _ = commit_stream("refs/heads/many", mark, a.commits, tip, files, rng, last, "src/feature_many",
                          allow_deploy=False)
    b.run("fast-import", "--quiet", cwd=client, input=s1 + s2)
    b.run("repack", "-a", "-d", "-q", cwd=client)
    tips = {ref: b.run("rev-parse", f"refs/heads/{ref}", cwd=client).strip() for ref in ("one", "many")}

    hooked = w / "server-hooked.git"
    shutil.copytree(server, hooked, symlinks=True)
    b.install(hooked)
    b.run("config", "receive.advertisePushOptions", "true", cwd=server)

    configs = {}
    for key, count in (("rules", 0), ("ext1", 1), ("ext3", 3)):
        path = w / f"pushgate-{key}.toml"
        path.write_text(RULES_CONFIG.format(audit=w / f"audit-{key}.jsonl")
                        + "".join(NOOP_EXTENSION.format(i=i) for i in range(1, count + 1)))
        b.check_config(path)
        configs[key] = path
    print(f"fixtures: {len(history)} commits, server {tree_size(server) / 1e6:.1f} MB, "
          f"built in {time.perf_counter() - t0:.1f} s", flush=True)
    return server, hooked, client, tips, configs


def cases(b: Bench, server, hooked, client, tips, configs):
    slot = b.work / "slot.git"
    out = []
    scenarios = [("1 commit -> main", "one"), (f"{b.args.commits} commits -> main", "many")]
    for label, ref in scenarios:
        for key, _ in VARIANTS:
            template = server if key == "plain" else hooked
            env = dict(b.env, PUSHGATE_CONFIG=str(configs.get(key, configs["rules"])))

            def prepare(template=template):
                fresh_copy(template, slot)

            def run(env=env, ref=ref):
                return timed_push(b, client, slot, f"refs/heads/{ref}:refs/heads/main", env=env)

            def verify(ref=ref):
                return b.run("rev-parse", "refs/heads/main", cwd=slot).strip() == tips[ref]

            out.append(Case(label, key, run, prepare=prepare, verify=verify))
    return out, [label for label, _ in scenarios]


def report(results, scenarios, a):
    for scenario in scenarios:
        print(f"\n{scenario}, medians of {a.rounds} rounds (ratio and added: against no hooks):")
        variant_table(results, scenario, VARIANTS, "plain", reference="rules")
    first = scenarios[0]
    with_ext, without = results[(first, "ext3")], results[(first, "rules")]
    print()
    if not with_ext["wall"] or not without["wall"]:
        print(f"added by the 3 extensions: no figures (pushes failed)  target < {TARGET_MS:.0f} ms: MISS")
        return
    for metric, name in (("wall", "wall"), ("cpu", "CPU")):
        added = med(with_ext[metric]) - med(without[metric])
        pairs = paired(with_ext[metric], without[metric])
        ratio = med(with_ext[metric]) / med(without[metric])
        print(f"added by the 3 extensions ({name}): {added:+.1f} ms = median(with) - median(without) "
              f"(paired per-round median {med(pairs):+.1f} ms, IQR {iqr(pairs):.1f}); "
              f"ratio with/without {ratio:.2f}  target < {TARGET_MS:.0f} ms: {verdict(added < TARGET_MS)}"
              + ("" if metric == "wall" else " (by CPU)"))
    one = results[(first, "ext1")]
    if one["wall"]:
        print(f"one extension adds {med(one['wall']) - med(without['wall']):+.1f} ms wall, "
              f"{med(one['cpu']) - med(without['cpu']):+.1f} ms CPU (the three run in parallel on "
              f"{os.cpu_count()} CPUs)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(p, rounds=25, quick_rounds=3)
    p.add_argument("--history", type=int, help="commits already on the server (default 10000)")
    p.add_argument("--tags", type=int, default=20, help="annotated tags spread over the history (default 20)")
    p.add_argument("--commits", type=int, help="new commits in the second scenario (default 100)")
    a = p.parse_args()
    finish_common_options(a)
    a.history = a.history or (2000 if a.quick else 10_000)
    a.commits = a.commits or (20 if a.quick else 100)

    def body(work, where):
        b = Bench(a, work)
        print(f"pushgate extensions bench: {a.pushgate}, {b.run('--version').strip()}, "
              f"{os.cpu_count()} CPUs, scratch {where}", flush=True)
        fixtures = build(b)
        all_cases, scenarios = cases(b, *fixtures)
        load_before = os.getloadavg()[0]
        results, failures = interleaved(all_cases, a.rounds, a.warmup, a.seed)
        load_after = os.getloadavg()[0]
        report(results, scenarios, a)
        print_failures(failures)
        if a.quick:
            print("quick mode: reduced sizes and rounds; PASS/MISS is only indicative")
        print(load_line(load_before, load_after))

    in_scratch(a, body)


if __name__ == "__main__":
    main()
