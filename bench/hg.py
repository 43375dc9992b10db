#!/usr/bin/env python3
"""Mercurial benchmark for pushgate: real `hg push`es of 1 and of 100 new changesets into a
server repository with pushgate's hooks (`pushgate install --hg`) vs the same push into the
same repository without hooks, measured in the same run.

Fixtures (untimed): a git history (fast-import: a ~1,000-file tree, 1-3 files changed per
commit) converted to Mercurial with the bundled `convert` extension, all public; the server
is a clone of its history, the client holds the new changesets on top of it (the `default`
branch moves forward: an `update` of refs/heads/default). `pushgate install --hg` writes
.hg/pushgate_hg.py and `python:` pretxnclose/txnclose hooks in .hg/hgrc: the hooks run inside
the hg process, read the push with Mercurial's API and hand it to `pushgate hg ...`. Variants:

  no hooks           the server without hooks (the baseline)
  pushgate (rules)   a few rules (default branch protected, open branches and bookmarks, a
                     deploy/ path rule), no [limits], no extension
  pushgate (full)    the full configuration, as in push.py: the same rules, [limits]
                     max_blob_size = "10 MiB", [audit], and one `post` script connector
                     (a script that drains its stdin; spool on the scratch tmpfs): pretxnclose
                     records the push, txnclose confirms it and starts a detached deliverer

This script is the child subreaper of what it starts: after each push (untimed) it waits for
the detached deliverer to exit and checks the event was delivered. Every timed push goes into
a freshly copied server (untimed); variants are shuffled within each round. HGRCPATH points
at an empty file, so the machine's hgrc plays no part. Goal: the 1-changeset push with the
full configuration within 2x the hookless one. Standard library only.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import (Bench, Case, add_common_options, become_subreaper, commit_stream, finish_common_options,
                    fresh_copy, full_config, goal, in_scratch, interleaved, load_line, med, print_failures,
                    project_files, reap_children, spool_backlog, spool_delivered, timed, tree_size, variant_table)

GOAL = 2.0  # 1-changeset push, full configuration / no hooks
STRAYS = []  # (variant, count): processes left behind by a push without a post extension

CONFIG = """\
[identity]
env = ["PUSHGATE_USER"]

[groups]
maintainers = ["alice"]
devs = ["bob", "carol", "@maintainers"]
{limits}
[audit]
file = "{{audit}}"

[[rule]]
refs  = ["refs/heads/default"]
users = ["@maintainers"]
allow = ["all"]

[[rule]]
refs  = ["refs/heads/default"]
users = ["@devs"]
allow = ["update"]
deny  = ["create", "force", "delete"]
message = "default is protected: no new heads"

[[rule]]
refs  = ["refs/heads/**", "refs/bookmarks/**"]
users = ["@devs"]
allow = ["all"]

[[rule]]
refs  = ["refs/heads/**"]
paths = ["deploy/**"]
users = ["*"]
deny  = ["create", "update", "force"]
message = "deploy/ is for maintainers"
"""

VARIANTS = [
    ("plain", "no hooks"),
    ("rules", "pushgate (rules)"),
    ("full", "pushgate (full)"),
]
LIMITS = '\n[limits]\nmax_blob_size = "10 MiB"\n'



class Hg:
    def __init__(self, b: Bench):
        self.exe = shutil.which("hg")
        if not self.exe:
            sys.exit("bench: hg not found")
        empty = b.work / "empty.hgrc"
        empty.write_text("")
        self.env = dict(b.env, HGRCPATH=str(empty), HGUSER="bench <bench@example.org>", HGENCODING="utf-8")

    def run(self, *argv, cwd=None):
        proc = subprocess.run([self.exe, *map(str, argv)], cwd=cwd, env=self.env, capture_output=True)
        if proc.returncode != 0:
            sys.exit(f"bench: hg {' '.join(map(str, argv))} failed ({proc.returncode}):\n"
                     f"{proc.stderr.decode(errors='replace')}")
        return proc.stdout.decode()


def build(b: Bench, hg: Hg):
    a = b.args
    w = b.work
    rng = random.Random(1234)
    files = project_files()
    t0 = time.perf_counter()
    git = w / "source.git"
    b.run("init", "-q", "--bare", str(git))
    history, mark = commit_stream("refs/heads/main", 1, a.history, None, files, rng, 1_600_000_000,
                                  "src/added", allow_deploy=True)
    last = 1_600_000_000 + a.history * 600
    s1, mark = commit_stream("refs/heads/one", mark, 1, ":%d" % (mark - 1), files, rng, last,
                             "src/feature_one", allow_deploy=False)
    s2, _ = commit_stream("refs/heads/many", mark, a.commits, ":%d" % (mark - 2), files, rng, last,
                          "src/feature_many", allow_deploy=False)
    b.run("fast-import", "--quiet", cwd=git, input=history + s1 + s2)

    client = w / "client"
    hg.run("--config", "extensions.convert=", "convert", "-q", git, client)
    nodes = {}
    for name in ("main", "one", "many"):
        nodes[name] = hg.run("log", "-R", client, "-r", f"bookmark({name})", "-T", "{node}").strip()
    hg.run("bookmark", "-R", client, "-d", "main", "one", "many")
    hg.run("phase", "-R", client, "--public", "--force", "-r", "all()")
    converted = time.perf_counter() - t0

    server = w / "server"
    hg.run("clone", "-q", "-U", "--pull", "-r", nodes["main"], client, server)
    hooked = w / "server-hooked"
    shutil.copytree(server, hooked, symlinks=True)
    b.install(hooked, "--hg")

    configs = {}
    rules = w / "pushgate-rules.toml"
    rules.write_text(CONFIG.format(limits="").format(audit=w / "audit-rules.jsonl"))
    full = w / "pushgate-full.toml"
    full.write_text(full_config(w, CONFIG.format(limits=LIMITS), name="hg"))
    for key, path in (("rules", rules), ("full", full)):
        b.check_config(path)
        configs[key] = path
    for name in ("pushgate_hg.py", "hgrc"):
        if not (hooked / ".hg" / name).is_file():
            sys.exit(f"bench: pushgate install --hg left no .hg/{name} in {hooked}")
    hgrc = (hooked / ".hg" / "hgrc").read_text()
    if "python:" not in hgrc:
        sys.exit(f"bench: .hg/hgrc has no python: hooks:\n{hgrc}")
    count = hg.run("log", "-R", server, "-r", "tip", "-T", "{rev}").strip()
    print(f"fixtures: {int(count) + 1} changesets, server {tree_size(server / '.hg') / 1e6:.1f} MB, "
          f"built in {time.perf_counter() - t0:.1f} s (hg convert {converted:.1f} s)", flush=True)
    return server, hooked, client, nodes, configs


def cases(b: Bench, hg: Hg, server, hooked, client, nodes, configs):
    slot = b.work / "slot"
    out = []
    scenarios = [("1 changeset", "one"), (f"{b.args.commits} changesets", "many")]
    for label, name in scenarios:
        for key, _ in VARIANTS:
            template = server if key == "plain" else hooked
            env = dict(hg.env, PUSHGATE_CONFIG=str(configs.get(key, configs["rules"])))

            spool = b.work / "spool-hg" if key == "full" else None
            before = {}

            def prepare(template=template, spool=spool):
                fresh_copy(template, slot)
                if spool is not None:
                    before["delivered"] = spool_delivered(spool)

            def run(env=env, name=name):
                return timed([hg.exe, "push", "-q", "-r", nodes[name], str(slot)], cwd=client, env=env)

            def verify(name=name, spool=spool, key=key):
                # Untimed: the detached deliverer txnclose started (re-parented to us) has to
                # be done, and the event delivered, before the next push.
                n, _cpu, done = reap_children(60.0)
                heads = hg.run("heads", "-R", slot, "-T", "{node}\n").split()
                why = None
                if heads != [nodes[name]]:
                    why = f"heads {heads}, expected {nodes[name]}"
                elif not done:
                    why = "a detached process was still running after 60 s"
                elif spool is not None and (spool_backlog(spool) or spool_delivered(spool) != before["delivered"] + 1):
                    why = (f"the event was not delivered (deliverers reaped: {n}, backlog {spool_backlog(spool)}, "
                           f"delivered {spool_delivered(spool) - before['delivered']})")
                if spool is None and n:
                    STRAYS.append((key, n))
                if why:
                    print(f"bench: {key}: {why}", flush=True)
                return why is None

            out.append(Case(label, key, run, prepare=prepare, verify=verify))
    return out, [label for label, _ in scenarios]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(p, rounds=9, quick_rounds=2)
    p.add_argument("--history", type=int, help="changesets already on the server (default 1000)")
    p.add_argument("--commits", type=int, help="new changesets in the second scenario (default 100)")
    a = p.parse_args()
    finish_common_options(a)
    if not become_subreaper():
        sys.exit("bench: prctl(PR_SET_CHILD_SUBREAPER) failed: cannot wait for the detached deliverers")
    a.history = a.history or (200 if a.quick else 1000)
    a.commits = a.commits or (20 if a.quick else 100)

    def body(work, where):
        b = Bench(a, work)
        hg = Hg(b)
        version = hg.run("--version", "-q").strip().splitlines()[0]
        print(f"pushgate hg bench: {a.pushgate}, {version}, {os.cpu_count()} CPUs, scratch {where}", flush=True)
        fixtures = build(b, hg)
        all_cases, scenarios = cases(b, hg, *fixtures)
        load_before = os.getloadavg()[0]
        results, failures = interleaved(all_cases, a.rounds, a.warmup, a.seed)
        load_after = os.getloadavg()[0]
        for scenario in scenarios:
            print(f"\nhg push, {scenario}, medians of {a.rounds} rounds (ratio and added: against no hooks):")
            variant_table(results, scenario, VARIANTS, "plain", reference="rules")
        first = scenarios[0]
        full, plain = results[(first, "full")], results[(first, "plain")]
        print()
        if full["wall"] and plain["wall"]:
            ratio, cpu_ratio = med(full["wall"]) / med(plain["wall"]), med(full["cpu"]) / med(plain["cpu"])
            print(f"goal: {first}, pushgate (full) / no hooks = {ratio:.2f} (CPU {cpu_ratio:.2f}), "
                  f"goal <= {GOAL:.1f}x: {goal(ratio <= GOAL)} (by CPU: {goal(cpu_ratio <= GOAL)})")
        else:
            print(f"goal: {first}: no figures: FAIL")
        if STRAYS:
            print(f"note: {sum(n for _, n in STRAYS)} stray process(es) were reaped after pushes without a post "
                  f"extension ({', '.join(sorted({k for k, _ in STRAYS}))})")
        print("pushgate's hg hooks run inside the hg process (python: hooks); each runs one `pushgate hg` "
              "process. CPU = the hg process tree, not the detached deliverer.")
        print_failures(failures)
        if a.quick:
            print("quick mode: reduced sizes and rounds")
        print(load_line(load_before, load_after))

    in_scratch(a, body)


if __name__ == "__main__":
    main()
