//! A throw-away PostgreSQL server ([`TestDb`]) for what keeps its state in PostgreSQL (the
//! fleet backend's delivery outbox): its own data directory and unix socket in a temp dir,
//! run from the newest installed PostgreSQL, stopped the way a crash stops it and started
//! again on the same data, looked into with `psql`.
//!
//! As root the server runs as `nobody` (PostgreSQL refuses to run as root): its directory is
//! given to that user, and every server program drops to it before it runs.
//!
//! The postmaster is the test's own child, started without `pg_ctl`: a stop is waited for on
//! the process itself. Only readiness is polled, on the pid file, as `pg_ctl -w` does.
//!
//! A data directory is a copy of one `initdb` kept under the target directory (initdb costs
//! half a second of CPU, a copy a tenth of that), on tmpfs when there is room: on a virtual
//! machine's disk, writing a fresh data directory's 40 MB alone can take a second.

use super::WAIT;
use super::command::Invocation;
use std::ffi::CString;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

const INSTALL: &str = "PostgreSQL is not installed (no initdb, postgres and psql in `pg_config --bindir` or \
                       /usr/lib/postgresql/*/bin): install it with `apt-get install -y postgresql`, or set \
                       PUSHGATE_TEST_NO_POSTGRES=1 to skip the tests that need it";

/// What every data directory is initialized with (the template's name depends on it).
const INITDB: [&str; 5] = ["--username=postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"];

/// `sun_path` holds 108 bytes with the NUL: the longest socket path a server can have.
const SOCKET_PATH_MAX: usize = 107;

/// How a [`TestDb`] differs from the default: a unix socket only, fsync off.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Listen on 127.0.0.1 too (a free port), TLS only, with a certificate from a throw-away
    /// CA: [`TestDb::tls_url`], [`TestDb::ca_file`].
    pub tls: bool,
    /// Keep fsync and full-page writes on, for timings closer to production's.
    pub durable: bool,
    /// Lines for postgresql.conf, after the harness's own (so they win).
    pub extra_conf: Vec<String>,
}

/// A PostgreSQL server of the test's own, as the `postgres` superuser sees it (trusted on
/// the unix socket). Stopped and removed when dropped.
pub struct TestDb {
    postgres: &'static Postgres,
    /// The socket directory, holding `data/`, `server.log` and the TLS files.
    dir: tempfile::TempDir,
    port: u16,
    /// The superuser's password over TCP, with [`Options::tls`].
    password: Option<String>,
    /// The postmaster, while it runs.
    server: Mutex<Option<Child>>,
}

/// The installed PostgreSQL, and who runs its server.
struct Postgres {
    bin: PathBuf,
    /// `postgres --version`.
    version: String,
    /// When we are root: the user the server runs as.
    user: Option<User>,
}

struct User {
    name: String,
    uid: u32,
    gid: u32,
}

/// Whether a test that needs PostgreSQL should end here: only when PostgreSQL is not
/// installed and `PUSHGATE_TEST_NO_POSTGRES=1` says that is expected (it prints so). Without
/// that variable a missing PostgreSQL fails the test, naming what to install.
pub fn skip_without_postgres() -> bool {
    if bin_dir().is_some() {
        return false;
    }
    if std::env::var_os("PUSHGATE_TEST_NO_POSTGRES").is_some_and(|v| v == "1") {
        let test = std::thread::current().name().unwrap_or("this test").to_string();
        println!("note: PostgreSQL is not installed and PUSHGATE_TEST_NO_POSTGRES=1: {test} is skipped");
        return true;
    }
    panic!("{INSTALL}");
}

impl TestDb {
    /// A server on a unix socket only.
    #[track_caller]
    pub fn start() -> TestDb {
        TestDb::start_with(Options::default())
    }

    /// A server as `options` say, accepting connections when this returns.
    #[track_caller]
    pub fn start_with(options: Options) -> TestDb {
        let postgres = postgres();
        let dir = tempfile::Builder::new().prefix("pushgate-pg-").tempdir_in(base_dir(postgres)).unwrap();
        let socket = dir.path().join(".s.PGSQL.65535");
        assert!(socket.as_os_str().len() <= SOCKET_PATH_MAX, "socket path too long: {}", socket.display());
        if let Some(user) = &postgres.user {
            std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
        }
        let port = if options.tls { free_port() } else { 5432 };
        let password = options.tls.then(|| random_hex(16));
        let db = TestDb { postgres, dir, port, password, server: Mutex::new(None) };
        db.make_data_dir();
        db.configure(&options);
        db.start_again();
        if let Some(password) = &db.password {
            db.psql(&format!("alter role postgres password '{password}'"));
        }
        db
    }

    /// The libpq connection string of the unix socket.
    pub fn url(&self) -> String {
        format!("host={} port={} user=postgres dbname=postgres", conninfo_value(self.dir.path()), self.port)
    }

    /// The libpq connection string over TCP and TLS (with [`Options::tls`]). `sslmode=require`
    /// encrypts without checking the certificate: add `sslrootcert=<ca_file> sslmode=verify-full`
    /// to check it.
    #[track_caller]
    pub fn tls_url(&self) -> String {
        let password = self.password.as_ref().expect("tls_url: the server was started without Options::tls");
        format!("host=127.0.0.1 port={} user=postgres password={password} dbname=postgres sslmode=require", self.port)
    }

    /// The CA certificate (PEM) the server's certificate is signed by (with [`Options::tls`]).
    #[track_caller]
    pub fn ca_file(&self) -> PathBuf {
        assert!(self.password.is_some(), "ca_file: the server was started without Options::tls");
        self.dir.path().join("ca.crt")
    }

    /// Stop the server the way a crash does (`pg_ctl stop -m immediate`: no checkpoint,
    /// clients cut off), and wait until it and its backends are gone.
    #[track_caller]
    pub fn stop(&self) {
        let mut server = self.server().take().expect("stop: the server is not running");
        shut_down(&mut server);
    }

    /// Start the server again on its data directory (crash recovery runs after a
    /// [`TestDb::stop`]), and wait until it accepts connections.
    #[track_caller]
    pub fn start_again(&self) {
        let mut server = self.server();
        let running = server.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)));
        assert!(!running, "start_again: the server is running");
        let log = self.log_path();
        let file = fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let log_from = file.metadata().unwrap().len();
        let child = self
            .server_command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.postgres.bin.join("postgres").display()));
        self.wait_until_ready(server.insert(child), log_from);
    }

    /// `sql` run by `psql` on the unix socket: the rows it printed, unaligned, a line each,
    /// fields separated by `|`. Panics with psql's stderr when it fails.
    #[track_caller]
    pub fn psql(&self, sql: &str) -> String {
        self.psql_to(&self.url(), sql).ok()
    }

    /// `psql` running `sql` on the server `conninfo` names, as [`TestDb::psql`] does.
    pub fn psql_to(&self, conninfo: &str, sql: &str) -> Invocation {
        let mut command = Command::new(self.postgres.bin.join("psql"));
        // Nothing of the caller's environment (PGOPTIONS, PGSSLMODE, a locale) reaches it.
        command
            .env_clear()
            .env("LC_ALL", "C")
            .env("PGCONNECT_TIMEOUT", WAIT.as_secs().to_string())
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        Invocation::new(command, "psql".to_string()).args(["-XAtq", "-d", conninfo, "-c", sql])
    }

    fn server(&self) -> MutexGuard<'_, Option<Child>> {
        // A test that panicked while starting the server must still have it stopped.
        self.server.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// `program` of the installation, run as the server's user in the server's directory,
    /// with nothing of the caller's environment (PGDATA, PGPORT, a locale).
    fn server_command(&self, program: &str) -> Command {
        let mut command = Command::new(self.postgres.bin.join(program));
        command.env_clear().env("LC_ALL", "C").current_dir(self.dir.path()).stdin(Stdio::null());
        if let Some(user) = &self.postgres.user {
            command.uid(user.uid).gid(user.gid);
        }
        command
    }

    /// `data/`: a copy of the template, or, the first time, an `initdb` that becomes it.
    fn make_data_dir(&self) {
        let template = self.postgres.template();
        let data = self.data_dir();
        if template.is_dir() {
            copy_tree(&template, &data);
            return;
        }
        let initdb = Invocation::new(self.server_command("initdb"), "initdb".to_string());
        initdb.arg("-D").arg(&data).args(INITDB).ok();
        // Into a private name first, then renamed: a test running beside this one sees no
        // half-copied template. Whoever renames second keeps its copy to itself. A target
        // directory we may not write to only costs each server its own initdb.
        let Ok(staging) = tempfile::Builder::new().prefix(".postgres-template-").tempdir_in(template_dir()) else {
            return;
        };
        copy_tree(&data, &staging.path().join("data"));
        let _ = fs::rename(staging.path().join("data"), &template);
    }

    fn configure(&self, options: &Options) {
        let dir = self.dir.path().display();
        let mut conf = vec![
            format!("port = {}", self.port),
            format!("unix_socket_directories = '{dir}'"),
            format!("listen_addresses = '{}'", if options.tls { "127.0.0.1" } else { "" }),
            "max_connections = 50".to_string(),
            "shared_buffers = 32MB".to_string(),
        ];
        if !options.durable {
            // synchronous_commit stays on: a commit acknowledged before `stop` is in the
            // page cache, and only the machine crashing could lose it.
            conf.extend(["fsync = off".to_string(), "full_page_writes = off".to_string()]);
        }
        if options.tls {
            self.make_certificates();
            conf.extend([
                "ssl = on".to_string(),
                format!("ssl_cert_file = '{dir}/server.crt'"),
                format!("ssl_key_file = '{dir}/server.key'"),
            ]);
            // Over TCP, TLS and a password only; the unix socket (0700) stays trusted.
            let hba = "local all all trust\n\
                       hostssl all all 127.0.0.1/32 scram-sha-256\n\
                       host all all all reject\n";
            fs::write(self.data_dir().join("pg_hba.conf"), hba).unwrap();
        }
        conf.extend(options.extra_conf.iter().cloned());
        let path = self.data_dir().join("postgresql.conf");
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("\n# pushgate's TestDb\n");
        for line in conf {
            text.push_str(&line);
            text.push('\n');
        }
        fs::write(&path, text).unwrap();
    }

    /// `ca.crt` (a CA made for this server alone) and the server's `server.crt` and
    /// `server.key`, for 127.0.0.1 and localhost.
    fn make_certificates(&self) {
        let dir = self.dir.path();
        let openssl = |args: &str| {
            let mut command = Command::new("openssl");
            command.current_dir(dir).stdin(Stdio::null());
            Invocation::new(command, "openssl".to_string()).args(args.split_whitespace()).ok();
        };
        let key = "-nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1";
        openssl(&format!(
            "req -x509 -new {key} -keyout ca.key -out ca.crt -days 2 -subj /CN=pushgate-test-CA \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign"
        ));
        openssl(&format!("req -new {key} -keyout server.key -out server.csr -subj /CN=127.0.0.1"));
        fs::write(
            dir.join("server.ext"),
            "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n\
             keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        openssl(
            "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext \
             -out server.crt",
        );
        // The server reads a key it owns only if nobody else may read it.
        let key = dir.join("server.key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        if let Some(user) = &self.postgres.user {
            for file in [key, dir.join("server.crt")] {
                std::os::unix::fs::chown(file, Some(user.uid), Some(user.gid)).unwrap();
            }
        }
    }

    /// Wait until the postmaster accepts connections: its pid on the pid file's first line,
    /// `ready` on its eighth (what `pg_ctl -w` looks at). Panics with what it logged if it
    /// exits first or takes longer than [`WAIT`].
    #[track_caller]
    fn wait_until_ready(&self, server: &mut Child, log_from: u64) {
        let pid_file = self.data_dir().join("postmaster.pid");
        let pid = server.id().to_string();
        let deadline = Instant::now() + WAIT;
        loop {
            let text = fs::read_to_string(&pid_file).unwrap_or_default();
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            if lines.first() == Some(&pid.as_str()) && lines.get(7) == Some(&"ready") {
                return;
            }
            if let Some(status) = server.try_wait().unwrap() {
                panic!("PostgreSQL exited ({status}) before it accepted connections:\n{}", self.log_since(log_from));
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not accept connections within {WAIT:?}:\n{}",
                self.log_since(log_from)
            );
            std::thread::park_timeout(Duration::from_millis(5));
        }
    }

    /// What the server logged from byte `from` of `server.log` on.
    fn log_since(&self, from: u64) -> String {
        let log = fs::read(self.log_path()).unwrap_or_default();
        String::from_utf8_lossy(log.get(from as usize..).unwrap_or_default()).into_owned()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(mut server) = self.server().take() {
            shut_down(&mut server);
        }
    }
}

/// SIGQUIT is what `pg_ctl stop -m immediate` sends: the postmaster has its backends quit at
/// once and ends when they all have.
fn shut_down(server: &mut Child) {
    // Until it is waited for, an ended server's pid stays its own (a zombie's): never
    // another process's.
    if let Ok(None) = server.try_wait() {
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(server.id() as i32, libc::SIGQUIT) };
    }
    let _ = server.wait();
}

/// The installation, found once; panics, saying what to install, when there is none.
#[track_caller]
fn postgres() -> &'static Postgres {
    static POSTGRES: OnceLock<Postgres> = OnceLock::new();
    POSTGRES.get_or_init(|| {
        let bin = bin_dir().unwrap_or_else(|| panic!("{INSTALL}")).to_path_buf();
        let version = Invocation::new(Command::new(bin.join("postgres")), "postgres".to_string()).arg("--version").ok();
        // SAFETY: geteuid has no preconditions.
        let user = (unsafe { libc::geteuid() } == 0).then(|| server_user("nobody"));
        Postgres { bin, version, user }
    })
}

impl Postgres {
    /// The initdb'd data directory servers of this installation and user are copies of.
    fn template(&self) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        (&self.bin, &self.version, INITDB, self.user.as_ref().map(|u| &u.name)).hash(&mut hasher);
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() }.hash(&mut hasher);
        template_dir().join(format!("postgres-template-{:016x}", hasher.finish()))
    }
}

fn template_dir() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// The directory of `initdb`, `postgres` and `psql`: `pg_config --bindir`'s, else the
/// newest `/usr/lib/postgresql/<major>/bin` (Debian's layout, where they are not on PATH).
fn bin_dir() -> Option<&'static Path> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let configured = Command::new("pg_config")
            .arg("--bindir")
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
            .collect();
        versions.sort();
        configured
            .into_iter()
            .chain(versions.into_iter().rev().map(|(_, bin)| bin))
            .find(|bin| ["initdb", "postgres", "psql"].iter().all(|program| bin.join(program).is_file()))
    })
    .as_deref()
}

#[track_caller]
fn server_user(name: &str) -> User {
    let id = |flag: &str| {
        let out = Invocation::new(Command::new("id"), "id".to_string()).args([flag, name]).ok();
        out.parse().unwrap_or_else(|_| panic!("`id {flag} {name}` said {out:?}"))
    };
    User { name: name.to_string(), uid: id("-u"), gid: id("-g") }
}

/// Where servers' directories go: tmpfs (/dev/shm) when it has room, else the temp dir if
/// a socket path fits there and, as root, the server's user can reach it, else /tmp.
fn base_dir(postgres: &Postgres) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let sticky = fs::metadata(shm).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o1777 == 0o1777);
    if sticky && available_bytes(shm) >= 1 << 30 {
        return shm.to_path_buf();
    }
    let temp = std::env::temp_dir();
    let fits = temp.join("pushgate-pg-XXXXXX/.s.PGSQL.65535").as_os_str().len() <= SOCKET_PATH_MAX;
    let reachable = || temp.ancestors().all(|dir| fs::metadata(dir).is_ok_and(|m| m.mode() & 0o001 != 0));
    if fits && (postgres.user.is_none() || reachable()) { temp } else { PathBuf::from("/tmp") }
}

fn available_bytes(path: &Path) -> u64 {
    let Ok(path) = CString::new(path.as_os_str().as_bytes()) else { return 0 };
    // SAFETY: statvfs is plain data, all zeroes is a valid value of it.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statvfs to fill in.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return 0;
    }
    stat.f_bavail as u64 * stat.f_frsize as u64
}

/// `cp -a`: as root it keeps the server's user as the owner.
#[track_caller]
fn copy_tree(from: &Path, to: &Path) {
    let cp = Invocation::new(Command::new("cp"), "cp".to_string());
    cp.arg("-a").arg(from).arg(to).ok();
}

/// A port on 127.0.0.1 nothing listens on, now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn random_hex(bytes: usize) -> String {
    let mut random = vec![0; bytes];
    fs::File::open("/dev/urandom").unwrap().read_exact(&mut random).unwrap();
    random.iter().map(|b| format!("{b:02x}")).collect()
}

/// A value for a libpq connection string, quoted when it has to be.
fn conninfo_value(value: &Path) -> String {
    let text = value.to_string_lossy();
    if text.contains([' ', '\'', '\\']) {
        format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
    } else {
        text.into_owned()
    }
}
