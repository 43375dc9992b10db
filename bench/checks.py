#!/usr/bin/env python3
"""Push checks benchmark for pushgate: a 5,000-commit push to main of a server with ~10,000
commits of history, through pushgate's hooks with rules only vs with every `[[check]]` key on,
and without hooks, measured in the same run.

The pushed commits (fast-import on the client side, 1-3 files changed each, a few new files)
pass every check, so every push is accepted and the checks do their full work:
commit_message (a Conventional Commits regex), author_email and committer_email (regexes),
linear_history, max_files_changed, max_blob_size, forbid_paths (paths that are not there),
require_signed (each commit carries a gpgsig header, written by this script: pushgate checks
the header is present, never the signature) and author_is_pusher ([users.bob] emails).

Target (issue 7): the push with all checks takes <= 2x the rules-only push. Reported both on
the total push time and on the added hook time (push - the same push without hooks).
`--each` adds one variant per check key, to see which one costs.

Every timed push goes into a freshly copied server (untimed); variants are shuffled within
each round. A report, not a test: it never fails on a missed target. Standard library only.
"""

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import time
import zlib
from pathlib import Path

from common import (RULES_CONFIG, Bench, Case, add_common_options, build_server, commit_stream,
                    finish_common_options, fresh_copy, in_scratch, interleaved, load_line, med, paired,
                    print_failures, project_files, timed_push, tree_size, variant_table, verdict)

TARGET = 2.0

USERS = """
[users.bob]
emails = ["bob@example.org"]
"""

CHECK_KEYS = {
    "commit_message": 'commit_message = "^(feat|fix|docs|chore)(\\\\(.+\\\\))?: "',
    "author_email": 'author_email = "@example\\\\.org$"',
    "committer_email": 'committer_email = "@example\\\\.org$"',
    "linear_history": "linear_history = true",
    "max_files_changed": "max_files_changed = 100000",
    "max_blob_size": 'max_blob_size = "5 MiB"',
    "forbid_paths": 'forbid_paths = ["*.pem", "**/id_rsa", "secrets/**"]',
    "require_signed": "require_signed = true",
    "author_is_pusher": "author_is_pusher = true",
}

SIGNATURE = (b"gpgsig -----BEGIN PGP SIGNATURE-----\n \n"
             b" iQEzBAABCAAdFiEEbenchbenchbenchbenchbenchbenchbenchFAmU1bGwACgkQbench\n"
             b" bench/signature/not/verified/by/pushgate/only/its/presence/is/checked=\n"
             b" =AbCd\n -----END PGP SIGNATURE-----\n")


def check_block(keys) -> str:
    return "\n[[check]]\nrefs = [\"refs/heads/**\"]\n" + "".join(CHECK_KEYS[k] + "\n" for k in keys)


def sign_commits(b: Bench, repo: Path, base: str, ref: str) -> str:
    """Rewrite base..ref with a gpgsig header in every commit (loose objects written here,
    ids computed here); returns the new tip. git fast-import of this git cannot write one."""
    revs = b.run("rev-list", "--reverse", f"{base}..{ref}", cwd=repo).split()
    proc = subprocess.run([b.git, "cat-file", "--batch"], cwd=repo, env=b.env, capture_output=True,
                          input="".join(r + "\n" for r in revs).encode(), check=True)
    out, pos, new_of, tip = proc.stdout, 0, {}, base
    for rev in revs:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        body = out[header_end + 1:header_end + 1 + size]
        pos = header_end + 1 + size + 1
        head, message = body.split(b"\n\n", 1)
        lines = []
        for line in head.split(b"\n"):
            if line.startswith(b"parent "):
                parent = line[7:].decode()
                line = b"parent " + new_of.get(parent, parent).encode()
            lines.append(line)
        signed = b"\n".join(lines) + b"\n" + SIGNATURE + b"\n" + message
        raw = b"commit %d\0" % len(signed) + signed
        oid = hashlib.sha1(raw).hexdigest()
        target = repo / "objects" / oid[:2] / oid[2:]
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(zlib.compress(raw))
        new_of[rev] = tip = oid
    b.run("update-ref", ref, tip, cwd=repo)
    return tip


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
    stream, _ = commit_stream("refs/heads/many", 100_000, a.commits, tip, files, rng, last, "src/feature_many",
                              allow_deploy=False, authors=["bob <bob@example.org>"],
                              message="feat(m{n}): change {n} on main\n\nTouches a few files.\n")
    b.run("fast-import", "--quiet", cwd=client, input=stream)
    many = sign_commits(b, client, tip, "refs/heads/many")
    b.run("repack", "-a", "-d", "-q", cwd=client)
    b.run("prune", cwd=client)
    b.run("commit-graph", "write", "--reachable", cwd=client)

    hooked = w / "server-hooked.git"
    shutil.copytree(server, hooked, symlinks=True)
    b.install(hooked)
    b.run("config", "receive.advertisePushOptions", "true", cwd=server)

    def config(name, keys):
        path = w / f"pushgate-{name}.toml"
        text = RULES_CONFIG.format(audit=w / f"audit-{name}.jsonl")
        if keys:
            text += USERS + check_block(keys)
        path.write_text(text)
        b.check_config(path)
        return path

    configs = {"rules": config("rules", []), "checks": config("checks", list(CHECK_KEYS))}
    if a.each:
        for key in CHECK_KEYS:
            configs[key] = config(key, [key])
    print(f"fixtures: {len(history)} commits on the server ({tree_size(server) / 1e6:.1f} MB), "
          f"{a.commits} signed commits to push, built in {time.perf_counter() - t0:.1f} s", flush=True)
    return server, hooked, client, many, configs


def variants(a):
    out = [("plain", "no hooks"), ("rules", "pushgate (rules only)"), ("checks", "pushgate (rules + all checks)")]
    if a.each:
        out += [(key, f"rules + {key}") for key in CHECK_KEYS]
    return out


def cases(b: Bench, server, hooked, client, many, configs):
    slot = b.work / "slot.git"
    out = []
    label = f"{b.args.commits} commits -> main"
    for key, _ in variants(b.args):
        template = server if key == "plain" else hooked
        env = dict(b.env, PUSHGATE_CONFIG=str(configs.get(key, configs["rules"])))

        def prepare(template=template):
            fresh_copy(template, slot)

        def run(env=env):
            return timed_push(b, client, slot, "refs/heads/many:refs/heads/main", env=env)

        def verify():
            return b.run("rev-parse", "refs/heads/main", cwd=slot).strip() == many

        out.append(Case(label, key, run, prepare=prepare, verify=verify))
    return out, label


def report(results, scenario, a):
    print(f"\n{scenario}, medians of {a.rounds} rounds (ratio and added: against no hooks):")
    variant_table(results, scenario, variants(a), "plain", reference="rules")
    plain, rules, checks = (results[(scenario, k)] for k in ("plain", "rules", "checks"))
    print()
    if not (plain["wall"] and rules["wall"] and checks["wall"]):
        print(f"all checks vs rules only: no figures (pushes failed)  target <= {TARGET:.1f}x: MISS")
        return
    for metric, name in (("wall", "wall"), ("cpu", "CPU")):
        total = med(checks[metric]) / med(rules[metric])
        hook_checks = med(paired(checks[metric], plain[metric]))
        hook_rules = med(paired(rules[metric], plain[metric]))
        added = hook_checks / hook_rules if hook_rules > 0 else float("inf")
        suffix = "" if metric == "wall" else " (by CPU)"
        print(f"all checks / rules only ({name}): total push {total:.2f}x "
              f"({med(checks[metric]):.0f} / {med(rules[metric]):.0f} ms)  target <= {TARGET:.1f}x: "
              f"{verdict(total <= TARGET)}{suffix}")
        print(f"  added hook time: {added:.2f}x ({hook_checks:+.0f} / {hook_rules:+.0f} ms over no hooks)  "
              f"target <= {TARGET:.1f}x: {verdict(added <= TARGET)}{suffix}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(p, rounds=9, quick_rounds=3)
    p.add_argument("--history", type=int, help="commits already on the server (default 10000)")
    p.add_argument("--tags", type=int, default=20, help="annotated tags spread over the history (default 20)")
    p.add_argument("--commits", type=int, help="new commits pushed (default 5000)")
    p.add_argument("--each", action="store_true", help="also one variant per check key (rules + that check)")
    a = p.parse_args()
    finish_common_options(a)
    a.history = a.history or (2000 if a.quick else 10_000)
    a.commits = a.commits or (500 if a.quick else 5000)

    def body(work, where):
        b = Bench(a, work)
        print(f"pushgate checks bench: {a.pushgate}, {b.run('--version').strip()}, {os.cpu_count()} CPUs, "
              f"scratch {where}", flush=True)
        fixtures = build(b)
        all_cases, scenario = cases(b, *fixtures)
        load_before = os.getloadavg()[0]
        results, failures = interleaved(all_cases, a.rounds, a.warmup, a.seed)
        load_after = os.getloadavg()[0]
        report(results, scenario, a)
        print_failures(failures)
        if a.quick:
            print("quick mode: reduced sizes and rounds; PASS/MISS is only indicative")
        print(load_line(load_before, load_after))

    in_scratch(a, body)


if __name__ == "__main__":
    main()
