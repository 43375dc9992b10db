//! Pushes over HTTP: `git http-backend` as a CGI behind a small web server written here,
//! which authenticates users with Basic auth and sets `REMOTE_USER`, as nginx or Apache
//! would. pushgate's hooks decide, and the event says `"via": "http"`.

use crate::harness::{Sandbox, assert_valid_event, changes};
use base64::Engine;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The one password every user of the web server has.
const PASSWORD: &str = "pw";

/// What a CGI request needs from the site.
#[derive(Clone)]
struct Cgi {
    site: Sandbox,
    /// How many request bodies came chunked.
    chunked: Arc<AtomicUsize>,
}

/// A web server on 127.0.0.1 that runs `git http-backend` for each request, one thread per
/// connection; stopped when dropped.
struct WebServer {
    port: u16,
    chunked: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WebServer {
    fn start(site: &Sandbox) -> WebServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let chunked = Arc::new(AtomicUsize::new(0));
        let cgi = Cgi { site: site.clone(), chunked: chunked.clone() };
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let cgi = cgi.clone();
                std::thread::spawn(move || {
                    if let Err(e) = serve(stream, &cgi) {
                        eprintln!("web server: {e}");
                    }
                });
            }
        });
        WebServer { port, chunked, stop, thread: Some(thread) }
    }

    /// The URL of repository `repo`, with `credentials` (`user:password`) if any.
    fn url(&self, credentials: Option<&str>, repo: &str) -> String {
        let auth = credentials.map(|c| format!("{c}@")).unwrap_or_default();
        format!("http://{auth}127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request as the client sent it.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The user of a valid `Authorization: Basic` header.
    fn user(&self) -> Option<String> {
        let encoded = self.header("Authorization")?.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
        let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        (password == PASSWORD && !user.is_empty()).then(|| user.to_string())
    }
}

/// Serve one request on `stream`, then close it.
fn serve(stream: TcpStream, cgi: &Cgi) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let Some(request) = read_request(&mut reader, &mut writer, &cgi.chunked)? else { return Ok(()) };
    let Some(user) = request.user() else {
        let body = "authentication required\n";
        return write!(
            writer,
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
             Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    let response = run_cgi(&request, &user, cgi)?;
    write!(writer, "HTTP/1.1 {}\r\n", response.status)?;
    for (name, value) in &response.headers {
        write!(writer, "{name}: {value}\r\n")?;
    }
    write!(writer, "Content-Length: {}\r\nConnection: close\r\n\r\n", response.body.len())?;
    writer.write_all(&response.body)?;
    writer.flush()
}

/// The request line, headers and body (by `Content-Length` or chunked).
fn read_request(
    reader: &mut impl BufRead,
    writer: &mut impl Write,
    chunked: &AtomicUsize,
) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else { return Ok(None) };
    let (method, target) = (method.to_string(), target.to_string());
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let mut request = Request { method, target, headers, body: Vec::new() };
    if request.header("Expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        writer.flush()?;
    }
    if request.header("Transfer-Encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        chunked.fetch_add(1, Ordering::SeqCst);
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16).map_err(std::io::Error::other)?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            request.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = request.header("Content-Length") {
        let length: usize = length.parse().map_err(std::io::Error::other)?;
        request.body = vec![0; length];
        reader.read_exact(&mut request.body)?;
    }
    Ok(Some(request))
}

/// What a CGI program answered.
struct Response {
    /// `200 OK` unless it said otherwise with `Status:`.
    status: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Run `git http-backend` for `request` as `user`.
fn run_cgi(request: &Request, user: &str, cgi: &Cgi) -> std::io::Result<Response> {
    let (path, query) = request.target.split_once('?').unwrap_or((&request.target, ""));
    let mut command = cgi.site.std_command("git");
    command
        .arg("http-backend")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", &request.method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", request.header("Content-Type").unwrap_or(""))
        .env("CONTENT_LENGTH", request.body.len().to_string())
        .env("GIT_PROJECT_ROOT", &cgi.site.repos)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in &request.headers {
        if ["Content-Encoding", "Git-Protocol", "Accept"].iter().any(|h| name.eq_ignore_ascii_case(h)) {
            command.env(format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_")), value);
        }
    }
    let mut child = command.spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let body = request.body.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let output = child.wait_with_output()?;
    writer.join().unwrap()?;
    Ok(parse_cgi(&output.stdout))
}

/// A CGI response: headers (with `Status:` for the status line), a blank line, the body.
fn parse_cgi(output: &[u8]) -> Response {
    let (head, body) = match output.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => (&output[..at], &output[at + 4..]),
        None => match output.windows(2).position(|w| w == b"\n\n") {
            Some(at) => (&output[..at], &output[at + 2..]),
            None => (output, &[][..]),
        },
    };
    let mut status = "200 OK".to_string();
    let mut headers = Vec::new();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        if name.eq_ignore_ascii_case("Status") {
            status = value.trim().to_string();
        } else {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    Response { status, headers, body: body.to_vec() }
}

fn rev(site: &Sandbox, repo: &Path, name: &str) -> Option<String> {
    let run = site.git(repo, &["rev-parse", "--verify", "--quiet", name]).run();
    (run.code == Some(0)).then(|| run.stdout.trim().to_string())
}

#[test]
fn pushes_over_http_are_decided_for_the_web_servers_user() {
    let site = Sandbox::new();
    let rules = r#"
[[rule]]
refs = ["refs/**"]
users = ["alice"]
allow = ["all"]

[[rule]]
refs = ["refs/heads/bob/**"]
users = ["bob"]
allow = ["all"]
"#;
    site.configure(&format!("{rules}\n{}", site.recorder("events", "")));
    let repo = site.git_repo("app.git");
    let work = site.git_work("work");
    let web = WebServer::start(&site);
    // A big post buffer: git sends Content-Length rather than chunks (both are served).
    let push = |credentials: &str, args: &[&str]| {
        site.git(&work, &["-c", "http.postBuffer=104857600", "push", &web.url(Some(credentials), "app.git")])
            .args(args)
            // The client's own identity variables reach nothing on the server.
            .env("PUSHGATE_USER", "mallory")
            .env("REMOTE_USER", "mallory")
            .run()
    };

    push("alice:pw", &["main"]).assert_accepted();
    let main = rev(&site, &work, "main");
    assert_eq!(rev(&site, &repo, "main"), main);

    site.git(&work, &["commit", "--quiet", "--allow-empty", "-m", "Bob's"]).ok();
    let run = push("bob:pw", &["main"]);
    run.assert_rejected();
    assert_eq!(
        run.all_pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/main: update denied (no rule allows it)"],
        "{run}"
    );
    assert_eq!(rev(&site, &repo, "main"), main);

    let run = push("bob:wrong", &["main"]);
    assert_eq!(run.code, Some(128), "{run}");
    let run = site.git(&work, &["ls-remote", &web.url(None, "app.git")]).run();
    assert_eq!(run.code, Some(128), "{run}");
    assert_eq!(rev(&site, &repo, "main"), main);

    let events = site.events("events");
    assert_eq!(events.len(), 1, "only the accepted push is an event: {events:#?}");
    assert_valid_event(&events[0]);
    assert_eq!(events[0]["user"]["name"], "alice");
    assert_eq!(events[0]["user"]["via"], "http");
    assert_eq!(changes(&events[0]), [("refs/heads/main".to_string(), "create".to_string())]);
    assert_eq!(web.chunked.load(Ordering::SeqCst), 0, "git chunked despite the big post buffer");
}

#[test]
fn big_pushes_over_http_arrive_in_chunks_and_are_decided_too() {
    let site = Sandbox::new();
    site.configure("[limits]\nmax_blob_size = \"1 MiB\"\n\n[[rule]]\nrefs = [\"refs/**\"]\nusers = [\"alice\"]\nallow = [\"all\"]\n");
    let repo = site.git_repo("app.git");
    let work = site.git_work("work");
    let web = WebServer::start(&site);
    // Incompressible, so that the pack is bigger than the post buffer and git sends chunks.
    let mut noise = Vec::with_capacity(3 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while noise.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(work.join("big.bin"), &noise).unwrap();
    site.git(&work, &["add", "big.bin"]).ok();
    site.git(&work, &["commit", "--quiet", "-m", "Big"]).ok();
    let short = rev(&site, &work, "main").unwrap()[..7].to_string();
    let run =
        site.git(&work, &["-c", "http.postBuffer=65536", "push", &web.url(Some("alice:pw"), "app.git"), "main"]).run();
    run.assert_rejected();
    assert_eq!(
        run.all_pushgate_lines(),
        [
            "pushgate: push rejected for alice".to_string(),
            format!("pushgate: refs/heads/main: big.bin (3.0 MiB) in {short} exceeds max_blob_size 1 MiB"),
        ],
        "{run}"
    );
    assert_eq!(rev(&site, &repo, "main"), None);
    assert!(web.chunked.load(Ordering::SeqCst) > 0, "git sent no chunked body");
}
