//! An HTTP endpoint on 127.0.0.1 that records every request and answers from a script.
//! Requests reach the test through a channel (`recv_timeout`), never by sleeping.

use super::WAIT;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

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
