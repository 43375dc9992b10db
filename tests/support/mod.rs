//! What the extension and delivery tests share beyond the harness in `common`: an HTTP
//! receiver that plays an endpoint, a background `pushgate deliver --watch` that dies with
//! the test, a way to wait for the deliverers post-receive detaches, the spool's
//! configuration, the event schemas and webhook signatures recomputed from their specs.
//!
//! Nothing here sleeps to wait for something: requests arrive through a channel
//! (`recv_timeout`), and only where no event exists to wait on (a detached process ending,
//! a background deliverer draining its queues) is a condition polled, briefly, against a
//! deadline.

// Each test binary uses a different part of it.
#![allow(dead_code)]

use crate::common::{PUSHGATE, Sandbox, TestServer};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen promptly before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// The version pushgate names itself with (`User-Agent: pushgate/<version>`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

// ---------------------------------------------------------------------------------------
// The HTTP receiver
// ---------------------------------------------------------------------------------------

/// One request as the endpoint saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target: path and query.
    pub path: String,
    /// In the order sent, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (case-insensitive); panics when it is missing.
    #[track_caller]
    pub fn header(&self, name: &str) -> &str {
        self.try_header(name).unwrap_or_else(|| panic!("no {name} header in {self:#?}"))
    }

    pub fn try_header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics when it is not JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// `X-Pushgate-Delivery`.
    pub fn delivery(&self) -> String {
        self.header("X-Pushgate-Delivery").to_string()
    }

    /// The event's `sequence` (pushgate format).
    #[track_caller]
    pub fn sequence(&self) -> u64 {
        self.json()["sequence"].as_u64().unwrap_or_else(|| panic!("no sequence in {}", self.json()))
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Hold the request, answering nothing, until the test calls [`Receiver::release`];
    /// then answer 200.
    Hang,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer::Reply { status, headers: Vec::new(), body: Vec::new() }
    }

    pub fn ok() -> Answer {
        Answer::status(200)
    }

    /// A JSON body with its content type.
    pub fn json(status: u16, body: serde_json::Value) -> Answer {
        Answer::status(status).header("Content-Type", "application/json").body(body.to_string())
    }

    pub fn header(mut self, name: &str, value: &str) -> Answer {
        if let Answer::Reply { headers, .. } = &mut self {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    pub fn body(mut self, text: impl Into<Vec<u8>>) -> Answer {
        if let Answer::Reply { body, .. } = &mut self {
            *body = text.into();
        }
        self
    }
}

struct Shared {
    script: Mutex<VecDeque<Answer>>,
    then: Answer,
    released: Mutex<bool>,
    release: Condvar,
    stopped: AtomicBool,
}

impl Shared {
    fn next_answer(&self) -> Answer {
        self.script.lock().unwrap().pop_front().unwrap_or_else(|| self.then.clone())
    }

    fn wait_for_release(&self) {
        let mut released = self.released.lock().unwrap();
        while !*released {
            released = self.release.wait(released).unwrap();
        }
    }
}

/// An HTTP endpoint on 127.0.0.1: it records every request and answers from a script of
/// answers, then with a fixed one. Each connection is served on its own thread, so a held
/// request does not stop others. Requests reach the test through a channel as soon as their
/// body is read, before they are answered.
pub struct Receiver {
    addr: std::net::SocketAddr,
    requests: mpsc::Receiver<Request>,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Answers 200 to everything.
    pub fn ok() -> Receiver {
        Receiver::scripted([], Answer::ok())
    }

    /// Answers `always` to everything.
    pub fn always(always: Answer) -> Receiver {
        Receiver::scripted([], always)
    }

    /// Answers from `script` in order, then `then` to every later request.
    pub fn scripted(script: impl IntoIterator<Item = Answer>, then: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into_iter().collect()),
            then,
            released: Mutex::new(false),
            release: Condvar::new(),
            stopped: AtomicBool::new(false),
        });
        let (tx, requests) = mpsc::channel();
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (tx, shared) = (tx.clone(), Arc::clone(&accepting));
                std::thread::spawn(move || serve(stream, &tx, &shared));
            }
        });
        Receiver { addr, requests, shared }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request; fails the test when none comes within [`WAIT`].
    #[track_caller]
    pub fn next(&self) -> Request {
        match self.requests.recv_timeout(WAIT) {
            Ok(request) => request,
            Err(_) => panic!("no request reached {} within {WAIT:?}", self.addr),
        }
    }

    /// The next request, or `None` when none comes within `limit`.
    pub fn next_within(&self, limit: Duration) -> Option<Request> {
        self.requests.recv_timeout(limit).ok()
    }

    /// The next `n` requests, in arrival order.
    #[track_caller]
    pub fn take(&self, n: usize) -> Vec<Request> {
        (0..n).map(|_| self.next()).collect()
    }

    /// Every request that has arrived and not been taken yet, without waiting.
    pub fn drain(&self) -> Vec<Request> {
        self.requests.try_iter().collect()
    }

    /// Fails the test when a request arrived that was not taken.
    #[track_caller]
    pub fn assert_no_more(&self) {
        let extra = self.drain();
        assert!(extra.is_empty(), "unexpected requests: {:#?}", extra.iter().map(summary).collect::<Vec<_>>());
    }

    /// Answer every held ([`Answer::Hang`]) request, and any later one at once.
    pub fn release(&self) {
        *self.shared.released.lock().unwrap() = true;
        self.shared.release.notify_all();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // A deliverer still holding a connection gets its answer and ends.
        self.release();
        self.shared.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// One line about a request, for failure messages.
pub fn summary(request: &Request) -> String {
    let event: Option<serde_json::Value> = serde_json::from_slice(&request.body).ok();
    let sequence = event.as_ref().and_then(|e| e.get("sequence")).cloned().unwrap_or_default();
    let git_ref = event.as_ref().and_then(|e| e.get("ref")).cloned().unwrap_or_default();
    format!(
        "{} {} delivery={} sequence={sequence} ref={git_ref}",
        request.method,
        request.path,
        request.try_header("X-Pushgate-Delivery").unwrap_or("-")
    )
}

fn serve(stream: TcpStream, tx: &mpsc::Sender<Request>, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(WAIT));
    let Some(request) = read_request(&stream) else { return };
    let answer = shared.next_answer();
    let _ = tx.send(request);
    let (status, headers, body) = match answer {
        Answer::Reply { status, headers, body } => (status, headers, body),
        Answer::Hang => {
            shared.wait_for_release();
            (200, Vec::new(), Vec::new())
        }
    };
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in &headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    let mut stream = stream;
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = header("Content-Length") {
        body = vec![0; length.parse().ok()?];
        reader.read_exact(&mut body).ok()?;
    }
    Some(Request { method, path, headers, body })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        302 => "Found",
        400 => "Bad Request",
        403 => "Forbidden",
        410 => "Gone",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// A URL on which nothing listens: connecting is refused.
pub fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hook")
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/// `pushgate <args>` started in the background with the sandbox's environment (as the
/// harness sets it), in its own process group; killed, group and all, when dropped.
pub struct Background {
    child: Child,
    what: String,
}

impl Background {
    pub fn start(sandbox: &Sandbox, args: &[&str]) -> Background {
        Background::start_with_env(sandbox, args, &[])
    }

    /// [`Background::start`] with more environment (a secret the deliverer signs with).
    pub fn start_with_env(sandbox: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Background {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(PUSHGATE);
        command.env_clear();
        for kept in ["PATH", "LLVM_PROFILE_FILE"] {
            if let Some(value) = std::env::var_os(kept) {
                command.env(kept, value);
            }
        }
        command
            .env("HOME", sandbox.root.join("home"))
            .env("TMPDIR", sandbox.root.join("tmp"))
            .env("LC_ALL", "C")
            .env("PUSHGATE_CONFIG", &sandbox.config)
            .envs(env.iter().copied())
            .current_dir(&sandbox.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let what = format!("pushgate {}", args.join(" "));
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Background { child, what }
    }

    /// Whether it is still running (a watcher should be).
    #[track_caller]
    pub fn assert_running(&mut self) {
        let status = self.child.try_wait().unwrap();
        assert!(status.is_none(), "`{}` ended: {status:?}", self.what);
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: kill has no memory effects; a group that is gone gives ESRCH.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// The `pushgate deliver` processes post-receive detached for this sandbox (they run as
/// `pushgate --config <its config> deliver --once`), still alive.
pub fn detached_deliverers(sandbox: &Sandbox) -> Vec<u32> {
    let config = sandbox.config.as_os_str().as_encoded_bytes().to_vec();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        // A zombie's cmdline is empty: it counts as gone.
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let ours = args.windows(2).any(|w| w[0] == b"--config" && w[1] == config.as_slice())
            && args.contains(&b"deliver".as_slice());
        if ours {
            found.push(pid);
        }
    }
    found
}

/// Wait until every deliverer post-receive detached for this sandbox has ended and let go
/// of the spool's locks. There is no event to wait on for the processes (they are not our
/// children), so /proc is polled against a deadline; then the locks are waited for.
#[track_caller]
pub fn wait_for_detached_deliverers(sandbox: &Sandbox) {
    let deadline = Instant::now() + WAIT;
    loop {
        let alive = detached_deliverers(sandbox);
        if alive.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "detached deliverers still running after {WAIT:?}: {alive:?}");
        std::thread::park_timeout(Duration::from_millis(10));
    }
    if let Some(spool) = configured_spool(sandbox) {
        wait_for_locks(spool_locks(&spool));
    }
}

/// The `[spool] dir` of the sandbox's configuration, if it names one.
fn configured_spool(sandbox: &Sandbox) -> Option<PathBuf> {
    let table: toml::Table = std::fs::read_to_string(&sandbox.config).ok()?.parse().ok()?;
    table.get("spool")?.get("dir")?.as_str().map(PathBuf::from)
}

/// The spool's lock files: its own, the fan-out's and each connector's.
fn spool_locks(spool: &Path) -> Vec<PathBuf> {
    let mut locks = vec![spool.join("lock"), spool.join("fan-out.lock")];
    if let Ok(connectors) = std::fs::read_dir(spool.join("connectors")) {
        locks.extend(connectors.flatten().map(|c| c.path().join("lock")));
    }
    locks.retain(|lock| lock.is_file());
    locks
}

/// Take and release each lock in turn. A deliverer killed with SIGKILL leaves /proc's view
/// before it lets go of its locks: once its main thread has exited, the process shows as a
/// zombie with an empty cmdline while another of its threads is still exiting with a
/// connector lock held, and the kernel releases the lock only after that thread is gone.
/// `flock` returns exactly then.
#[track_caller]
fn wait_for_locks(locks: Vec<PathBuf>) {
    let (released, all_released) = mpsc::channel();
    let waited = locks.clone();
    std::thread::spawn(move || {
        for lock in &waited {
            if let Ok(file) = std::fs::File::open(lock) {
                let _ = file.lock();
            }
        }
        let _ = released.send(());
    });
    if all_released.recv_timeout(WAIT).is_err() {
        panic!("spool locks still held {WAIT:?} after the last detached deliverer ended: {locks:?}");
    }
}

/// Poll `what` every few milliseconds until it returns `Some`, failing after [`WAIT`]. For
/// conditions with no event to wait on only.
#[track_caller]
pub fn poll<T>(description: &str, mut what: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = what() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {description}");
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// Configuration and inspection
// ---------------------------------------------------------------------------------------

/// Everyone may do anything: these tests are about extensions, not rules.
pub const ALLOW_ALL: &str = r#"
[[rule]]
refs = ["refs/**"]
users = ["*"]
allow = ["all"]
"#;

/// A TOML string literal.
pub fn quoted(text: impl AsRef<str>) -> String {
    serde_json::Value::String(text.as_ref().to_string()).to_string()
}

/// The spool of a test: inside its temp dir, with quick retries.
pub fn spool_dir(server: &TestServer) -> PathBuf {
    server.root().join("spool")
}

/// A `[spool]` table for `server`'s own spool directory.
pub fn spool_table(server: &TestServer, retry: &[&str]) -> String {
    let retry: Vec<String> = retry.iter().map(quoted).collect();
    format!("[spool]\ndir = {}\nretry = [{}]\n", quoted(spool_dir(server).to_string_lossy()), retry.join(", "))
}

/// A `post` HTTP extension table.
pub fn post_http(name: &str, url: &str, extra: &str) -> String {
    format!(
        "\n[[extension]]\nname = {}\ntype = \"http\"\nphase = \"post\"\nurl = {}\n{extra}\n",
        quoted(name),
        quoted(url)
    )
}

/// `pushgate <args> --json` parsed; the command must succeed.
#[track_caller]
pub fn json_of(server: &TestServer, args: &[&str]) -> serde_json::Value {
    let out = server.pushgate(args).args(["--json"]).ok();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("`pushgate {}` printed no JSON ({e}):\n{out}", args.join(" ")))
}

/// `queue status --json`'s row for `connector`.
#[track_caller]
pub fn connector_status(server: &TestServer, connector: &str) -> serde_json::Value {
    let rows = json_of(server, &["queue", "status"]);
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["connector"] == connector)
        .cloned()
        .unwrap_or_else(|| panic!("no connector {connector} in {rows}"))
}

/// `pushgate log --json`: one object per line.
#[track_caller]
pub fn log(server: &TestServer) -> Vec<serde_json::Value> {
    let out = server.pushgate(&["log", "--json"]).ok();
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))).collect()
}

/// Run `pushgate deliver --once` in the foreground; it must succeed.
#[track_caller]
pub fn deliver_once(server: &TestServer) {
    server.pushgate(&["deliver", "--once"]).ok();
}

/// The files under `dir`, recursively (empty when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

// ---------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------

/// `docs/event.schema.json`: the pushgate format.
pub fn event_schema() -> jsonschema::Validator {
    schema(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/event.schema.json"))
}

/// GitHub's push event (`tests/data/github-push-event.schema.json`).
pub fn github_schema() -> jsonschema::Validator {
    schema(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/github-push-event.schema.json"))
}

/// A validator for the schema at `path`, with format validation on (`date-time`, `uri`...).
pub fn schema(path: &Path) -> jsonschema::Validator {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", path.display()))
}

/// Fails the test with every violation when `instance` does not validate.
#[track_caller]
pub fn assert_valid(validator: &jsonschema::Validator, instance: &serde_json::Value) {
    let errors: Vec<String> =
        validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "does not validate:\n{}\n--- instance\n{instance:#}", errors.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Webhook signatures, from their published definitions
// ---------------------------------------------------------------------------------------

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// GitHub's `X-Hub-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the raw body,
/// keyed with the secret.
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    let hex: String = hmac_sha256(secret, body).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Standard Webhooks' `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of
/// `{id}.{timestamp}.{body}`, keyed with the base64-decoded part of a `whsec_` secret (or,
/// as pushgate documents for other secrets, the secret's bytes).
pub fn standard_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let key = match secret.strip_prefix("whsec_") {
        Some(rest) => STANDARD.decode(rest).unwrap(),
        None => secret.as_bytes().to_vec(),
    };
    let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body].concat();
    format!("v1,{}", STANDARD.encode(hmac_sha256(&key, &signed)))
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}
