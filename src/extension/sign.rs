//! Webhook signatures: GitHub's `X-Hub-Signature-256` and `X-Hub-Signature` (SHA-1, which
//! many receivers still read alone) and Standard Webhooks' `webhook-signature`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn github(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex(&hmac_sha256(secret, &[body])))
}

/// `sha1=<hex HMAC-SHA1(secret, body)>`: GitHub's older signature.
pub fn github_sha1(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha1={}", hex(&mac.finalize().into_bytes()))
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where the key is the
/// base64-decoded rest of a `whsec_` secret, or the secret's bytes otherwise.
pub fn standard_webhooks(secret: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let key = secret.strip_prefix(b"whsec_").and_then(|rest| STANDARD.decode(rest).ok());
    let key = key.as_deref().unwrap_or(secret);
    let mac = hmac_sha256(key, &[id.as_bytes(), b".", timestamp.to_string().as_bytes(), b".", body]);
    format!("v1,{}", STANDARD.encode(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_signature_matches_githubs_documented_example() {
        // From GitHub's "Validating webhook deliveries" documentation.
        assert_eq!(
            github(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn sha1_signature_matches_hmac_sha1s_published_test_vectors() {
        // RFC 2202, test cases 1 and 2.
        assert_eq!(github_sha1(&[0x0b; 20], b"Hi There"), "sha1=b617318655057264e28bc0b6fb378c8ef146be00");
        assert_eq!(
            github_sha1(b"Jefe", b"what do ya want for nothing?"),
            "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn standard_webhooks_signature_matches_the_specs_example() {
        // From the Standard Webhooks reference test vectors.
        let secret = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            standard_webhooks(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
