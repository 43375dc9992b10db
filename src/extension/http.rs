//! HTTP extensions: a `POST` of the body with pushgate's, Standard Webhooks' and (for the
//! `github` and `gitlab` formats) GitHub's or GitLab's headers, signed when a secret is set.
//! Redirects are not followed. Messages name the URL without credentials or query, never
//! the secret.

use super::body::Dialect;
use super::{Call, Reply, sign};
use crate::config::extension::redacted_url;
use crate::ids::name_based_id;
use crate::text;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How much of a refusal's body is read.
const MAX_BODY: u64 = 64 * 1024;
const USER_AGENT: &str = concat!("pushgate/", env!("CARGO_PKG_VERSION"));

/// An HTTP client for one endpoint: kept between the calls of a deliverer, so connections
/// are reused (keep-alive).
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(USER_AGENT)
        .build()
        .into()
}

/// Where a call goes: the extension's URL and headers, and its connector (GitLab's
/// `X-Gitlab-Webhook-UUID` names the webhook).
pub struct Endpoint<'a> {
    pub url: &'a str,
    pub headers: &'a [(String, String)],
    pub connector: &'a str,
}

pub fn post(agent: &ureq::Agent, to: &Endpoint, secret: Option<&[u8]>, timeout: Duration, call: &Call) -> Reply {
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut headers = match headers(call, to.connector, secret, timestamp) {
        Ok(headers) => headers,
        Err(reason) => return Reply::failed(reason),
    };
    // The admin's headers may add to ours, not replace them: receivers rely on these.
    for (name, value) in to.headers {
        let ours = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) || name.eq_ignore_ascii_case("user-agent");
        if !ours {
            headers.push((name.clone(), value.clone()));
        }
    }
    let mut request = agent.post(to.url);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let shown = redacted_url(to.url);
    match request.send(call.body) {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = response.body_mut().with_config().limit(MAX_BODY).read_to_vec().unwrap_or_default();
            classify(status, retry_after, &body, &shown)
        }
        Err(e) => Reply::failed(format!("{shown}: {}", describe(&e, timeout))),
    }
}

/// pushgate's headers, the format's, and the signatures with a secret. `Err` when the
/// secret cannot travel as GitLab's `X-Gitlab-Token` (which is the secret itself); it never
/// says what the secret is.
fn headers(
    call: &Call,
    connector: &str,
    secret: Option<&[u8]>,
    timestamp: u64,
) -> Result<Vec<(String, String)>, String> {
    let mut headers: Vec<(String, String)> = vec![
        ("Content-Type".into(), "application/json".into()),
        ("X-Pushgate-Event".into(), call.event.as_str().into()),
        ("X-Pushgate-Delivery".into(), call.delivery_id.into()),
        ("webhook-id".into(), call.delivery_id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
    ];
    match call.dialect {
        Dialect::Pushgate => {}
        Dialect::Github { total_commits } => {
            headers.push(("X-GitHub-Event".into(), "push".into()));
            headers.push(("X-GitHub-Delivery".into(), call.delivery_id.into()));
            headers.push(("X-Pushgate-Total-Commits".into(), total_commits.to_string()));
        }
        Dialect::Gitlab { hook } => {
            headers.push(("X-Gitlab-Event".into(), hook.header().into()));
            // The same for every delivery of one event, and for every event of one webhook.
            headers.push(("X-Gitlab-Event-UUID".into(), name_based_id(&format!("gitlab event {}", call.event_id))));
            headers.push(("X-Gitlab-Webhook-UUID".into(), name_based_id(&format!("gitlab webhook {connector}"))));
            headers.push(("X-Gitlab-Instance".into(), call.instance.into()));
            headers.push(("Idempotency-Key".into(), call.delivery_id.into()));
        }
    }
    let Some(secret) = secret else { return Ok(headers) };
    headers.push(("X-Hub-Signature-256".into(), sign::github(secret, call.body)));
    match call.dialect {
        Dialect::Pushgate => {}
        Dialect::Github { .. } => headers.push(("X-Hub-Signature".into(), sign::github_sha1(secret, call.body))),
        Dialect::Gitlab { .. } => {
            let token = std::str::from_utf8(secret)
                .ok()
                .filter(|t| !t.chars().any(char::is_control))
                .ok_or("the secret cannot be sent as X-Gitlab-Token: it is not UTF-8 or holds control characters")?;
            headers.push(("X-Gitlab-Token".into(), token.into()));
        }
    }
    headers.push(("webhook-signature".into(), sign::standard_webhooks(secret, call.delivery_id, timestamp, call.body)));
    Ok(headers)
}

fn classify(status: u16, retry_after: Option<Duration>, body: &[u8], url: &str) -> Reply {
    match status {
        200..=299 => Reply::Accepted { status: format!("HTTP {status}") },
        410 => Reply::Gone { reason: format!("{url} answered 410 Gone") },
        408 | 429 | 500..=599 => Reply::Failed {
            reason: format!("{url} answered {status}"),
            status: Some(format!("HTTP {status}")),
            retry_after,
        },
        _ => Reply::Refused { code: format!("HTTP {status}"), lines: refusal_message(body) },
    }
}

/// The `message` field of a JSON body, or the body as text.
fn refusal_message(body: &[u8]) -> Vec<String> {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string));
    match message {
        Some(message) => text::lines(message.as_bytes()),
        None => text::lines(body),
    }
}

/// A transport error in words, without anything from the URL.
fn describe(e: &ureq::Error, timeout: Duration) -> String {
    match e {
        ureq::Error::Timeout(_) => format!("timed out after {}", super::script::seconds(timeout)),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Io(io) => format!("connection error: {}", io.kind()),
        ureq::Error::Tls(what) => format!("TLS error: {what}"),
        ureq::Error::BadUri(_) => "bad URL".into(),
        _ => "request failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::extension::Phase;
    use crate::event::EventKind;
    use crate::event::gitlab::Hook;
    use std::path::Path;

    fn call(dialect: Dialect) -> Call<'static> {
        Call {
            body: b"{}",
            event: EventKind::Push,
            phase: Phase::Post,
            user: "alice",
            repo: "app",
            event_id: "e1",
            delivery_id: "d1",
            cwd: Path::new("/"),
            dialect,
            instance: "https://git.example.org",
        }
    }

    fn names(headers: &[(String, String)]) -> Vec<&str> {
        headers.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn value<'h>(headers: &'h [(String, String)], name: &str) -> &'h str {
        headers.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str())
    }

    #[test]
    fn each_format_adds_its_headers_and_signatures() {
        let common = ["Content-Type", "X-Pushgate-Event", "X-Pushgate-Delivery", "webhook-id", "webhook-timestamp"];
        let signed = ["X-Hub-Signature-256", "webhook-signature"];
        let plain = headers(&call(Dialect::Pushgate), "ci", Some(b"s"), 1).unwrap();
        assert_eq!(names(&plain), [&common[..], &signed[..]].concat());

        let github = headers(&call(Dialect::Github { total_commits: 3 }), "ci", Some(b"s"), 1).unwrap();
        let mut expected = common.to_vec();
        expected.extend(["X-GitHub-Event", "X-GitHub-Delivery", "X-Pushgate-Total-Commits"]);
        expected.extend(["X-Hub-Signature-256", "X-Hub-Signature", "webhook-signature"]);
        assert_eq!(names(&github), expected);
        assert_eq!(value(&github, "X-Pushgate-Total-Commits"), "3");
        assert_eq!(value(&github, "X-Hub-Signature"), sign::github_sha1(b"s", b"{}"));

        let gitlab = headers(&call(Dialect::Gitlab { hook: Hook::TagPush }), "ci", Some(b"tok en"), 1).unwrap();
        let mut expected = common.to_vec();
        expected.extend(["X-Gitlab-Event", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID", "X-Gitlab-Instance"]);
        expected.push("Idempotency-Key");
        expected.extend(["X-Hub-Signature-256", "X-Gitlab-Token", "webhook-signature"]);
        assert_eq!(names(&gitlab), expected);
        assert_eq!(value(&gitlab, "X-Gitlab-Event"), "Tag Push Hook");
        assert_eq!(value(&gitlab, "X-Gitlab-Token"), "tok en");
        assert_eq!(value(&gitlab, "Idempotency-Key"), "d1");
        assert_eq!(value(&gitlab, "X-Gitlab-Instance"), "https://git.example.org");
        let other = headers(&call(Dialect::Gitlab { hook: Hook::Push }), "other", None, 1).unwrap();
        assert_ne!(value(&other, "X-Gitlab-Webhook-UUID"), value(&gitlab, "X-Gitlab-Webhook-UUID"));
        assert_eq!(value(&other, "X-Gitlab-Event-UUID"), value(&gitlab, "X-Gitlab-Event-UUID"));
        assert!(!names(&other).contains(&"X-Gitlab-Token"));
    }

    #[test]
    fn a_secret_that_cannot_be_a_header_is_refused_without_being_shown() {
        let e = headers(&call(Dialect::Gitlab { hook: Hook::Push }), "ci", Some(b"bad\nsecret"), 1).unwrap_err();
        assert!(!e.contains("secret\n") && !e.contains("bad"), "{e}");
    }

    #[test]
    fn status_classes() {
        assert_eq!(classify(204, None, b"", "u"), Reply::Accepted { status: "HTTP 204".into() });
        assert!(
            matches!(classify(503, Some(Duration::from_secs(7)), b"", "u"), Reply::Failed { retry_after: Some(d), .. } if d.as_secs() == 7)
        );
        assert!(matches!(classify(408, None, b"", "u"), Reply::Failed { .. }));
        assert!(matches!(classify(429, None, b"", "u"), Reply::Failed { .. }));
        assert!(matches!(classify(410, None, b"", "u"), Reply::Gone { .. }));
        assert_eq!(classify(302, None, b"", "u"), Reply::Refused { code: "HTTP 302".into(), lines: vec![] });
        assert_eq!(
            classify(403, None, br#"{"message":"tests failed on abc\nsee CI"}"#, "u"),
            Reply::Refused { code: "HTTP 403".into(), lines: vec!["tests failed on abc".into(), "see CI".into()] }
        );
        assert_eq!(
            classify(400, None, b"no\n", "u"),
            Reply::Refused { code: "HTTP 400".into(), lines: vec!["no".into()] }
        );
    }
}
