//! Webhook signatures recomputed from their published definitions.

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
