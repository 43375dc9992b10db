//! HTTP extensions: a `POST` of the body with pushgate's, Standard Webhooks' and (for the
//! `github` format) GitHub's headers, signed when a secret is set. Redirects are not
//! followed. Messages name the URL without credentials or query, never the secret.

use super::{Call, Reply, sign};
use crate::config::extension::redacted_url;
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

pub fn post(
    agent: &ureq::Agent,
    url: &str,
    extra_headers: &[(String, String)],
    secret: Option<&[u8]>,
    timeout: Duration,
    call: &Call,
) -> Reply {
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut headers: Vec<(String, String)> = vec![
        ("Content-Type".into(), "application/json".into()),
        ("X-Pushgate-Event".into(), call.event.as_str().into()),
        ("X-Pushgate-Delivery".into(), call.delivery_id.into()),
        ("webhook-id".into(), call.delivery_id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
    ];
    if let Some(github) = call.github {
        headers.push(("X-GitHub-Event".into(), "push".into()));
        headers.push(("X-GitHub-Delivery".into(), call.delivery_id.into()));
        headers.push(("X-Pushgate-Total-Commits".into(), github.total_commits.to_string()));
    }
    if let Some(secret) = secret {
        headers.push(("X-Hub-Signature-256".into(), sign::github(secret, call.body)));
        headers.push((
            "webhook-signature".into(),
            sign::standard_webhooks(secret, call.delivery_id, timestamp, call.body),
        ));
    }
    // The admin's headers may add to ours, not replace them: receivers rely on these.
    for (name, value) in extra_headers {
        let ours = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) || name.eq_ignore_ascii_case("user-agent");
        if !ours {
            headers.push((name.clone(), value.clone()));
        }
    }
    let mut request = agent.post(url);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let shown = redacted_url(url);
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

fn classify(status: u16, retry_after: Option<Duration>, body: &[u8], url: &str) -> Reply {
    match status {
        200..=299 => Reply::Accepted,
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

    #[test]
    fn status_classes() {
        assert_eq!(classify(204, None, b"", "u"), Reply::Accepted);
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
