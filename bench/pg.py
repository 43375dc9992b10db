"""A throw-away PostgreSQL server for the fleet benchmarks (fleet.py, chaos.py --backend
postgres), started the way the tests start theirs (tests/suite/harness/postgres.rs): its own
data directory and unix socket in a temp dir on /dev/shm, no TCP, trust on the socket, the
postmaster a child of this script (stopped with SIGQUIT, what `pg_ctl stop -m immediate`
sends, and waited for), readiness read from postmaster.pid as `pg_ctl -w` does.

As root, the server runs as `nobody` (PostgreSQL refuses to run as root): its directory is
given to that user (mode 0700: nobody else can write or even list it) and every server
program drops to it before it runs. Standard library only.
"""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

PORT = 5432


def bin_dir() -> Path | None:
    """`pg_config --bindir`, else the newest /usr/lib/postgresql/<major>/bin with initdb,
    postgres and psql (Debian's layout)."""
    candidates = []
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    except OSError:
        pass
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        majors = sorted((int(p.name), p) for p in root.iterdir() if p.name.isdigit())
        candidates += [p / "bin" for _, p in reversed(majors)]
    for c in candidates:
        if all((c / prog).is_file() for prog in ("initdb", "postgres", "psql")):
            return c
    return None


class PgServer:
    """One PostgreSQL server of this run. `url` is the libpq connection string of its unix
    socket; `stop()` is a crash-like immediate stop, `start()` starts it again on the same
    data (crash recovery runs)."""

    def __init__(self, durable: bool = False, extra_conf: list[str] | None = None, base: str = "/dev/shm"):
        self.bin = bin_dir()
        if self.bin is None:
            raise SystemExit("PostgreSQL is not installed (no initdb/postgres/psql in `pg_config --bindir` or "
                             "/usr/lib/postgresql/*/bin): apt-get install -y postgresql")
        self.user = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
        if not os.access(base, os.W_OK):
            base = tempfile.gettempdir()
        self.dir = Path(tempfile.mkdtemp(prefix="pushgate-pg-", dir=base))
        os.chmod(self.dir, 0o700)
        if self.user:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.proc = None
        self.stops = 0
        self.version = subprocess.run([str(self.bin / "postgres"), "--version"], capture_output=True,
                                      text=True).stdout.strip()
        self._run("initdb", "-D", str(self.data), "--username=postgres", "--auth=trust", "--encoding=UTF8",
                  "--locale=C", "--no-sync")
        conf = [
            f"port = {PORT}",
            f"unix_socket_directories = '{self.dir}'",
            "listen_addresses = ''",
            "max_connections = 200",
            "shared_buffers = 64MB",
        ]
        if not durable:
            # As in the tests: synchronous_commit stays on (a commit acknowledged before an
            # immediate stop survives it: it is in the page cache); only the machine crashing
            # could lose it.
            conf += ["fsync = off", "full_page_writes = off"]
        conf += extra_conf or []
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\n# pushgate bench\n" + "\n".join(conf) + "\n")
        self.url = f"host={self.dir} port={PORT} user=postgres dbname=postgres"
        self.start()

    def _env(self):
        return {"LC_ALL": "C", "PATH": "/usr/bin:/bin"}

    def _user_kw(self):
        if self.user:
            return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        return {}

    def _run(self, program, *args):
        proc = subprocess.run([str(self.bin / program), *args], cwd=self.dir, env=self._env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, **self._user_kw())
        if proc.returncode != 0:
            raise SystemExit(f"pg: {program} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0):
        """Start the postmaster and wait until it accepts connections."""
        assert not self.running, "the server is running"
        log = open(self.log, "ab")
        self.proc = subprocess.Popen([str(self.bin / "postgres"), "-D", str(self.data)], cwd=self.dir,
                                     env=self._env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True, **self._user_kw())
        log.close()
        pid_file = self.data / "postmaster.pid"
        deadline = time.monotonic() + timeout
        while True:
            try:
                lines = [line.strip() for line in pid_file.read_text().splitlines()]
            except OSError:
                lines = []
            if len(lines) > 7 and lines[0] == str(self.proc.pid) and lines[7] == "ready":
                return
            if self.proc.poll() is not None:
                raise SystemExit(f"pg: PostgreSQL exited ({self.proc.returncode}) before it accepted "
                                 f"connections:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"pg: PostgreSQL not ready within {timeout}s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.005)

    def stop(self):
        """Stop the server the way a crash does (SIGQUIT: `pg_ctl stop -m immediate`, no
        checkpoint, clients cut off) and wait until it is gone."""
        if not self.running:
            return
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stops += 1

    def psql(self, sql: str, check: bool = True) -> str:
        """`sql` through psql on the socket: the rows, unaligned, a line each, `|` between fields."""
        proc = subprocess.run([str(self.bin / "psql"), "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", self.url, "-c", sql],
                              env=dict(self._env(), PGCONNECT_TIMEOUT="10"), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"psql {sql!r} failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def session(self) -> "PsqlSession":
        return PsqlSession(self)

    def cpu_seconds(self) -> float:
        """CPU (user+sys) of the server so far: the postmaster, its live backends and the
        backends it has reaped (cutime/cstime). A backend's CPU shows in cutime once it has
        exited."""
        if not self.running:
            return 0.0
        tick = os.sysconf("SC_CLK_TCK")

        def fields(pid):
            with open(f"/proc/{pid}/stat") as f:
                text = f.read()
            return text[text.rfind(")") + 2:].split()

        total = 0.0
        try:
            f = fields(self.proc.pid)
            total += sum(int(x) for x in f[11:15]) / tick  # utime stime cutime cstime
        except OSError:
            return 0.0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                f = fields(entry)
            except OSError:
                continue
            if int(f[1]) == self.proc.pid:
                total += (int(f[11]) + int(f[12])) / tick
        return total

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PsqlSession:
    """One long-lived psql reading statements from a pipe (a query costs a round trip, not
    a process start): `query(sql)` returns its rows as text."""

    MARK = "--pushgate-bench-end--"

    def __init__(self, server: PgServer):
        self.server = server
        self.proc = subprocess.Popen([str(server.bin / "psql"), "-XAtq", "-d", server.url],
                                     env=dict(server._env(), PGCONNECT_TIMEOUT="10"), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)

    def query(self, sql: str) -> str:
        self.proc.stdin.write(sql.rstrip().rstrip(";") + f";\n\\echo {self.MARK}\n")
        self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"psql session ended: {''.join(lines)}")
            if line.rstrip("\n") == self.MARK:
                return "".join(lines).strip()
            lines.append(line)

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
