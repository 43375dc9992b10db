"""What pushgate's benchmarks share: a git runner with an isolated environment, fast-import
streams, the server fixture, scratch space on a tmpfs, timed subprocesses (wall time and CPU
time of the process tree), the interleaved round loop and the report helpers.

Standard library only. Used by push.py, extensions.py, delivery.py, hg.py and checks.py.
"""

import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZERO = "0" * 40
AUTHORS = ["alice <alice@example.org>", "bob <bob@example.org>", "carol <carol@example.org>"]


# --------------------------------------------------------------------------- configuration

RULES_CONFIG = """\
# A realistic pushgate configuration for the benchmark: protected main, open branches,
# maintainers-only deploy/ paths, a blob size limit and an audit log.
[identity]
env = ["PUSHGATE_USER"]

[groups]
maintainers = ["alice"]
devs = ["bob", "carol", "@maintainers"]

[limits]
max_blob_size = "10 MiB"

[audit]
file = "{audit}"

[[rule]]
refs  = ["refs/heads/main"]
users = ["@maintainers"]
allow = ["all"]

[[rule]]
refs  = ["refs/heads/main"]
users = ["@devs"]
allow = ["update"]
deny  = ["create", "force", "delete"]
message = "main is protected: fast-forward only"

[[rule]]
refs  = ["refs/heads/**"]
users = ["@devs"]
allow = ["create", "update", "force", "delete"]

[[rule]]
refs  = ["refs/tags/**"]
users = ["@maintainers"]
allow = ["create"]

[[rule]]
refs  = ["refs/heads/**"]
paths = ["deploy/**"]
users = ["@maintainers"]
allow = ["create", "update", "force"]

[[rule]]
refs  = ["refs/heads/**"]
paths = ["deploy/**"]
users = ["*"]
deny  = ["create", "update", "force"]
message = "deploy/ is for maintainers"
"""


# The rest of the "full" configuration (push.py, hg.py): one `post` script connector, so
# that pre-receive records each push into the spool, post-receive confirms it and wakes (or
# starts) a deliverer, which runs the script. The script only drains its stdin (the event).
POST_SCRIPT_CONFIG = """
[spool]
dir = "{spool}"

[[extension]]
name = "drain"
type = "script"
phase = "post"
command = ["{script}"]
timeout = "10s"
"""

DRAIN_SCRIPT = "#!/bin/sh\nexec cat >/dev/null\n"


def full_config(work: Path, rules: str = RULES_CONFIG, name: str = "full", spool: Path | None = None) -> str:
    """`rules` (ref rules, a path rule, [limits] max_blob_size, [audit]) plus one `post`
    script connector whose spool is `spool` (default: work/spool-<name>, on the scratch
    tmpfs like the repositories). Writes the script; returns the configuration's text."""
    script = work / "drain-stdin.sh"
    if not script.exists():
        script.write_text(DRAIN_SCRIPT)
        script.chmod(0o755)
    spool = spool or work / f"spool-{name}"
    return rules.format(audit=work / f"audit-{name}.jsonl") + POST_SCRIPT_CONFIG.format(spool=spool, script=script)


def spool_backlog(spool: Path) -> int:
    """Files still waiting in a spool: incoming events and records, queued jobs."""
    n = 0
    incoming = spool / "incoming"
    if incoming.is_dir():
        n += sum(1 for f in incoming.iterdir() if f.name.endswith((".event", ".record")))
    connectors = spool / "connectors"
    if connectors.is_dir():
        for queue in connectors.glob("*/queue"):
            n += sum(1 for f in queue.iterdir() if f.name.endswith(".json"))
    return n


def spool_delivered(spool: Path) -> int:
    """Delivery attempts logged as delivered (the spool's log/*.jsonl)."""
    log = spool / "log"
    if not log.is_dir():
        return 0
    return sum(f.read_bytes().count(b'"outcome":"delivered"') for f in log.glob("*.jsonl"))


# --------------------------------------------------------------------------- deliverers

def become_subreaper() -> bool:
    """Make this process the child subreaper of everything it starts (prctl
    PR_SET_CHILD_SUBREAPER): the detached deliverers that post-receive starts (setsid, their
    parent exits at once) are then re-parented to us, so we can wait for them instead of
    letting them run into the next timed push."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def children(exclude=()) -> set[int]:
    """Our child processes (from /proc/<pid>/stat), less `exclude`."""
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == me:
            found.add(int(entry))
    return found - set(exclude)


REAPED: dict[int, str] = {}  # pid -> command line of the children reap_children waited for


def reap_children(timeout: float = 60.0, exclude=()) -> tuple[int, float, bool]:
    """Wait (untimed) until every child not in `exclude` has exited: with
    `become_subreaper`, the detached deliverers of the last push. Returns (how many, their
    CPU ms (user+sys, their own children included), whether all ended in time)."""
    deadline = time.monotonic() + timeout
    count, cpu = 0, 0.0
    while True:
        pending = children(exclude)
        if not pending:
            return count, cpu, True
        for pid in pending:
            if pid not in REAPED:
                try:
                    REAPED[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    REAPED[pid] = "?"
            try:
                got, _status, usage = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if got:
                count += 1
                cpu += (usage.ru_utime + usage.ru_stime) * 1000
        if time.monotonic() > deadline:
            return count, cpu, False
        time.sleep(0.002)


class WatchDeliverer:
    """One `pushgate deliver --watch` for a whole run (holds spool/watch.lock: post-receive
    then wakes it instead of starting a deliverer per push)."""

    def __init__(self, pushgate: Path, config: Path, env: dict, spool: Path):
        self.spool = spool
        self.proc = subprocess.Popen([str(pushgate), "--config", str(config), "deliver", "--watch"], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not (spool / "watch.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Until the spool has nothing left to deliver (untimed)."""
        deadline = time.monotonic() + timeout
        while spool_backlog(self.spool) and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(0.005)
        return not spool_backlog(self.spool)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- running git

class Bench:
    """The scratch dir, the parsed arguments and an environment isolated from the machine's
    git configuration (PUSHGATE_CONFIG and PUSHGATE_USER set for the hooks)."""

    def __init__(self, args, work: Path, pusher: str = "bob"):
        self.args = args
        self.work = work
        self.git = shutil.which("git") or "/usr/bin/git"
        home = work / "home"
        home.mkdir()
        (home / ".gitconfig").write_text(
            "[user]\n\tname = Bench\n\temail = bench@example.org\n"
            "[init]\n\tdefaultBranch = main\n"
            "[gc]\n\tauto = 0\n"
            "[advice]\n\tdetachedHead = false\n"
        )
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
            "GIT_TERMINAL_PROMPT": "0",
            "PUSHGATE_CONFIG": str(work / "pushgate.toml"),
            "PUSHGATE_USER": pusher,
        }

    def run(self, *argv, cwd=None, input=None, check=True):
        proc = subprocess.run(
            [self.git, *argv],
            cwd=cwd, env=self.env, input=input, capture_output=True,
        )
        if check and proc.returncode != 0:
            sys.exit(f"bench: command failed ({proc.returncode}): {' '.join(map(str, argv))}\n"
                     f"{proc.stderr.decode(errors='replace')}")
        return proc.stdout.decode()

    def pushgate(self, *argv, env=None, check=True):
        """Run the pushgate binary under test (untimed)."""
        proc = subprocess.run([str(self.args.pushgate), *map(str, argv)], env=env or self.env,
                              capture_output=True)
        if check and proc.returncode != 0:
            sys.exit(f"bench: pushgate {' '.join(map(str, argv))} failed ({proc.returncode}):\n"
                     f"{proc.stderr.decode(errors='replace')}{proc.stdout.decode(errors='replace')}")
        return proc

    def install(self, repo: Path, *flags):
        self.pushgate("install", *flags, repo)

    def check_config(self, path: Path):
        """Exit with pushgate's own message when a benchmark configuration does not validate."""
        proc = self.pushgate("check", "--config", path, check=False)
        if proc.returncode != 0:
            sys.exit(f"bench: {path} does not validate:\n{proc.stderr.decode(errors='replace')}"
                     f"{proc.stdout.decode(errors='replace')}")


# --------------------------------------------------------------------------- fast-import

def blob_text(path: str, rev: int, rng: random.Random, lines: int) -> bytes:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
    body = [f"// {path} revision {rev}"]
    for i in range(lines):
        body.append(f"fn f{i}() {{ {' '.join(rng.choice(words) for _ in range(6))} }}")
    return ("\n".join(body) + "\n").encode()


def data(payload: bytes) -> bytes:
    return b"data %d\n" % len(payload) + payload + b"\n"


def commit_stream(ref: str, first_mark: int, count: int, parent: str | None, files: list[str],
                  rng: random.Random, when: int, new_file_prefix: str, allow_deploy: bool,
                  big_every: int = 0, authors: list[str] | None = None,
                  message: str = "change {n} on {ref}\n\nTouches a few files.\n") -> tuple[bytes, int]:
    """A fast-import stream of `count` commits on `ref`, each changing 1-3 files."""
    out = []
    mark = first_mark
    for n in range(count):
        author = rng.choice(authors or AUTHORS)
        out.append(b"commit %s\nmark :%d\n" % (ref.encode(), mark))
        stamp = f"{author} {when + n * 600} +0000".encode()
        out.append(b"author " + stamp + b"\ncommitter " + stamp + b"\n")
        out.append(data(message.format(n=n, ref=ref).encode()))
        if n == 0 and parent is not None:
            out.append(b"from %s\n" % parent.encode())
        if parent is None and n == 0:
            for path in files:
                out.append(b"M 100644 inline %s\n" % path.encode() + data(blob_text(path, 0, rng, 20)))
        else:
            for _ in range(rng.randint(1, 3)):
                path = rng.choice(files)
                if not allow_deploy and path.startswith("deploy/"):
                    path = path.replace("deploy/", "src/deploy_tools/", 1)
                out.append(b"M 100644 inline %s\n" % path.encode() + data(blob_text(path, n + 1, rng, rng.randint(5, 40))))
            if n % 25 == 7:
                path = f"{new_file_prefix}/new_{n}.rs"
                out.append(b"M 100644 inline %s\n" % path.encode() + data(blob_text(path, n, rng, 10)))
            if big_every and n % big_every == big_every - 1:
                path = f"{new_file_prefix}/assets/blob_{n}.bin"
                out.append(b"M 100644 inline %s\n" % path.encode() + data(rng.randbytes(256 * 1024)))
        out.append(b"\n")
        mark += 1
    return b"".join(out), mark


def project_files() -> list[str]:
    """A tree of ~1,000 files in src/, docs/, deploy/."""
    files = [f"src/m{d:02}/f{f:02}.rs" for d in range(40) for f in range(25)]
    files += [f"docs/page{d:02}.md" for d in range(20)] + [f"deploy/env{d}.yml" for d in range(5)]
    files.append("README.md")
    return files


HISTORY_START = 1_600_000_000


def build_server(b: Bench, server: Path, history: int, tags: int, rng: random.Random,
                 files: list[str]) -> list[str]:
    """A bare server with `history` commits on main, `tags` annotated tags spread over it,
    repacked with bitmaps, packed refs and a commit-graph. Returns the commits, oldest first."""
    b.run("init", "-q", "--bare", str(server))
    stream, _ = commit_stream("refs/heads/main", 1, history, None, files, rng, HISTORY_START,
                              "src/added", allow_deploy=True)
    b.run("fast-import", "--quiet", cwd=server, input=stream)
    commits = b.run("rev-list", "--reverse", "refs/heads/main", cwd=server).split()
    # Release tags through the history, like a real project (they are hidden tips the
    # new-commit walk has to get past).
    if tags:
        step = max(1, len(commits) // tags)
        tag_lines = []
        for i, at in enumerate(range(step - 1, len(commits), step)):
            tag_lines.append(f"tag v1.{i}\nfrom {commits[at]}\ntagger Bench <bench@example.org> "
                             f"{HISTORY_START + at * 600} +0000\n")
            tag_lines.append(data(f"release 1.{i}\n".encode()).decode())
        b.run("fast-import", "--quiet", cwd=server, input="".join(tag_lines).encode())
    for key, value in [("receive.autogc", "false"), ("gc.auto", "0")]:
        b.run("config", key, value, cwd=server)
    b.run("repack", "-a", "-d", "-b", "-q", cwd=server)
    b.run("pack-refs", "--all", cwd=server)
    b.run("commit-graph", "write", "--reachable", cwd=server)
    return commits


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# --------------------------------------------------------------------------- measuring

def timed(argv, cwd=None, env=None, input=None):
    """Run argv; returns (exit code, stderr, wall ms, CPU ms of the process tree). The CPU time
    is the getrusage(RUSAGE_CHILDREN) delta: every descendant that was waited for (git's
    receive-pack and hooks, the hooks' children), not a detached process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter_ns()
    proc = subprocess.run(argv, cwd=cwd, env=env, input=input, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    wall = (time.perf_counter_ns() - t0) / 1e6
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000
    return proc.returncode, proc.stderr.decode(errors="replace"), wall, cpu


def timed_push(b: Bench, client: Path, server: Path, refspec: str, env=None):
    return timed([b.git, "push", "-q", "--no-verify", str(server), refspec], cwd=client, env=env or b.env)


def fresh_copy(template: Path, slot: Path):
    """An untimed `cp -a` of a template into the slot a timed run uses."""
    if slot.exists():
        shutil.rmtree(slot)
    subprocess.run(["cp", "-a", str(template), str(slot)], check=True)


class Case:
    """One (scenario, variant) pair of a round: `prepare` (untimed), `run` (timed: returns
    what `timed` returns), `verify` (untimed: did it do what it should), `after` (untimed)."""

    def __init__(self, scenario, variant, run, prepare=None, verify=None, after=None):
        self.scenario, self.variant = scenario, variant
        self.run, self.prepare, self.verify, self.after = run, prepare, verify, after


def interleaved(cases: list[Case], rounds: int, warmup: int, seed: int):
    """Every case once per round, in a shuffled order; warm-up rounds are not recorded.
    Returns (results, failures): results[(scenario, variant)][metric][round] = value, with
    metric "wall" or "cpu"; failures lists (scenario, variant, exit code, stderr)."""
    results = {(c.scenario, c.variant): {"wall": {}, "cpu": {}} for c in cases}
    failures = []
    rng = random.Random(seed)
    for rnd in range(warmup + rounds):
        warm = rnd < warmup
        order = list(cases)
        rng.shuffle(order)
        t_round = time.perf_counter()
        for case in order:
            if case.prepare:
                case.prepare()
            code, err, wall, cpu = case.run()
            ok = code == 0 and (case.verify is None or case.verify())
            if case.after:
                case.after()
            if not ok:
                failures.append((case.scenario, case.variant, code, err.strip()))
                continue
            if not warm:
                results[(case.scenario, case.variant)]["wall"][rnd] = wall
                results[(case.scenario, case.variant)]["cpu"][rnd] = cpu
        what = "warm-up" if warm else f"round {rnd - warmup + 1}/{rounds}"
        print(f"  {what} done in {time.perf_counter() - t_round:.1f} s", flush=True)
    return results, failures


def med(values) -> float:
    values = list(values.values()) if isinstance(values, dict) else list(values)
    return statistics.median(values) if values else float("nan")


def paired(x: dict, y: dict) -> list[float]:
    """Per-round differences x - y, for the rounds both have."""
    return [x[r] - y[r] for r in x if r in y]


def iqr(values):
    """Interquartile range: how much the per-round differences scatter."""
    if len(values) < 4:
        return float("nan")
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def variant_table(results, scenario, variants, baseline, reference=None, reference_label=None):
    """Print one scenario's variants: median wall and CPU time, ratio to `baseline` and the
    added time (median of the paired per-round differences, with their IQR); with
    `reference` (a variant key, or {variant: key}), also the paired difference to that
    variant. `variants` is a list of (key, label)."""
    refs = reference if isinstance(reference, dict) else {k: reference for k, _ in variants} if reference else {}
    if reference and not reference_label:
        reference_label = "vs " + dict(variants).get(reference, str(reference)).split(" (")[0]
    head = (f"{'variant':<34} {'wall':>8} {'ratio':>6} {'added':>9} {'IQR':>6}   "
            f"{'cpu':>8} {'ratio':>6} {'added':>9}")
    if refs:
        head += f"   {reference_label[:22]:>22}"
    print(head)
    print("-" * len(head))
    base = results[(scenario, baseline)]
    for key, label in variants:
        mine = results[(scenario, key)]
        if not mine["wall"]:
            print(f"{label:<34} (every run failed: no figures)")
            continue
        wall, cpu = med(mine["wall"]), med(mine["cpu"])
        line = f"{label:<34} {wall:6.1f}ms "
        if key == baseline or not base["wall"]:
            line += f"{'':>6} {'':>9} {'':>6}   {cpu:6.1f}ms {'':>6} {'':>9}"
        else:
            dw, dc = paired(mine["wall"], base["wall"]), paired(mine["cpu"], base["cpu"])
            line += (f"{wall / med(base['wall']):6.2f} {med(dw):+7.1f}ms {iqr(dw):6.1f}   "
                     f"{cpu:6.1f}ms {cpu / med(base['cpu']):6.2f} {med(dc):+7.1f}ms")
        ref = refs.get(key)
        if ref and key not in (baseline, ref) and results[(scenario, ref)]["wall"]:
            other = results[(scenario, ref)]
            line += (f"   {med(paired(mine['wall'], other['wall'])):+7.1f}ms wall"
                     f" {med(paired(mine['cpu'], other['cpu'])):+6.1f}ms cpu")
        print(line)


def print_failures(failures):
    if not failures:
        return
    print(f"\n{len(failures)} run(s) failed and were left out:")
    seen = set()
    for scenario, variant, code, err in failures:
        if (scenario, variant) not in seen:
            seen.add((scenario, variant))
            print(f"  {scenario} {variant}: exit {code}: {err[:500]}")


def load_line(before: float, after: float) -> str:
    """The 1-minute load average around the timed rounds, with a warning when it was high."""
    busy = max(before, after) > 0.7 * (os.cpu_count() or 1) / 2 + 0.3
    return (f"load average (1 min) {before:.2f} before, {after:.2f} after the timed rounds"
            + ("  -- the machine was busy: wall figures are inflated, trust the CPU table more" if busy else ""))


def verdict(met: bool) -> str:
    return "PASS" if met else "MISS"


def goal(met: bool) -> str:
    """A goal's verdict (push.py, delivery.py, hg.py): reported, never a failure."""
    return "PASS" if met else "FAIL"


# --------------------------------------------------------------------------- scratch space

def scratch_dir(args):
    """A private tmpfs when root, else /dev/shm, else the normal temp dir. Returns
    (path, description, cleanup)."""
    base = Path(tempfile.mkdtemp(prefix="pushgate-bench-"))
    if getattr(args, "no_tmpfs", False):
        return base, f"{base} (normal temp dir: --no-tmpfs, expect noisy figures)", lambda: shutil.rmtree(base, True)
    if os.geteuid() == 0:
        mnt = base / "mnt"
        mnt.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g,mode=0700", "pushgate-bench", str(mnt)],
                              capture_output=True)
        if proc.returncode == 0:
            def cleanup():
                subprocess.run(["umount", str(mnt)], capture_output=True)
                shutil.rmtree(base, True)
            return mnt, f"{mnt} (private tmpfs)", cleanup
        print(f"bench: mount -t tmpfs failed ({proc.stderr.decode().strip()}); falling back", file=sys.stderr)
    shutil.rmtree(base, True)
    if os.access("/dev/shm", os.W_OK):
        shm = Path(tempfile.mkdtemp(prefix="pushgate-bench-", dir="/dev/shm"))
        return shm, f"{shm} (/dev/shm: not root or no tmpfs mount)", lambda: shutil.rmtree(shm, True)
    tmp = Path(tempfile.mkdtemp(prefix="pushgate-bench-"))
    return tmp, f"{tmp} (normal temp dir, NOT tmpfs: expect noisy figures)", lambda: shutil.rmtree(tmp, True)


def keep_message(work: Path) -> str:
    mounted = work.name == "mnt"
    return (f"kept {work}; remove it with: "
            f"{'umount ' + str(work) + ' && ' if mounted else ''}rm -rf {work.parent if mounted else work}")


def add_common_options(p, rounds: int, quick_rounds: int = 2):
    """Options every benchmark takes; `finish_common_options` fills the defaults in."""
    p.add_argument("--rounds", type=int, help=f"timed rounds (default {rounds}; {quick_rounds} with --quick)")
    p.add_argument("--warmup", type=int, help="untimed rounds first (default 1; 0 with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, few rounds")
    p.add_argument("--pushgate", type=Path, default=ROOT / "target/release/pushgate",
                   help="the binary under test (default target/release/pushgate)")
    p.add_argument("--seed", type=int, default=7, help="seed of the per-round shuffle")
    p.add_argument("--no-tmpfs", action="store_true", help="use the normal temp dir even as root")
    p.add_argument("--keep", action="store_true", help="keep the scratch dir (and its tmpfs) for profiling")
    p.add_argument("--nice", type=int, default=0,
                   help="run the script and everything it measures at this niceness (e.g. -10 as root, "
                        "on a machine shared with other work; every variant alike)")
    p.set_defaults(_rounds=rounds, _quick_rounds=quick_rounds)


def finish_common_options(a):
    a.rounds = a.rounds if a.rounds is not None else (a._quick_rounds if a.quick else a._rounds)
    a.warmup = a.warmup if a.warmup is not None else (0 if a.quick else 1)
    a.pushgate = a.pushgate.resolve()
    if not os.access(a.pushgate, os.X_OK):
        sys.exit(f"bench: {a.pushgate} not found: run `cargo build --release` first (or pass --pushgate)")
    renice(getattr(a, "nice", 0))


def renice(n: int):
    """Set this process's niceness to `n` (inherited by everything it starts; a detached
    deliverer sets its own, nice 10). Says so: figures at another niceness are not the
    machine's usual ones."""
    if not n:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, n)
        print(f"bench: running at nice {os.getpriority(os.PRIO_PROCESS, 0)} (--nice {n})", flush=True)
    except OSError as e:
        print(f"bench: --nice {n} failed ({e}); running at nice {os.getpriority(os.PRIO_PROCESS, 0)}", flush=True)


def in_scratch(a, body, extra_cleanup=None):
    """Run body(work, where) in a scratch dir; clean up (or keep, with --keep) afterwards."""
    work, where, cleanup = scratch_dir(a)
    try:
        body(work, where)
    finally:
        if extra_cleanup:
            extra_cleanup()
        if a.keep:
            print("\n" + keep_message(work))
        else:
            cleanup()
