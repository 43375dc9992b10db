//! Identifiers: random UUIDs for events and deliveries, UUIDs derived from names (the same
//! text gives the same id on any machine, so a rebuilt event keeps its ids), and small
//! stable numbers derived from names.

/// A random (version 4) UUID.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid_text(&bytes)
}

/// A UUID derived from `text` (SHA-256 based): the same text, the same id, on any machine.
pub fn name_based_id(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid_text(&bytes)
}

fn uuid_text(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// A number derived from a name (FNV-1a), the same on every server and every run, small
/// enough for JavaScript receivers.
pub fn stable_id(name: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash & ((1 << 53) - 1)).max(1)
}

/// A random number in `[0, 1)` (for jitter).
pub fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    fill_random(&mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

fn fill_random(bytes: &mut [u8]) {
    let mut filled = 0;
    while filled < bytes.len() {
        let rest = &mut bytes[filled..];
        // SAFETY: the pointer and length describe `rest`, a live, writable buffer.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            // No kernel randomness: fall back to time and pid, still unique enough for ids.
            let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let mixed = seed.as_nanos() ^ (u128::from(std::process::id()) << 64);
            for (i, b) in rest.iter_mut().enumerate() {
                *b = (mixed >> ((i % 16) * 8)) as u8;
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuids() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn name_based_ids_are_stable() {
        assert_eq!(name_based_id("x"), name_based_id("x"));
        assert_ne!(name_based_id("x"), name_based_id("y"));
    }

    #[test]
    fn stable_ids_are_stable_and_js_safe() {
        assert_eq!(stable_id("team/app"), stable_id("team/app"));
        assert_ne!(stable_id("team/app"), stable_id("team/web"));
        assert!(stable_id("x") < 1 << 53);
    }

    #[test]
    fn random_units_are_in_range() {
        assert!((0..100).map(|_| random_unit()).all(|u| (0.0..1.0).contains(&u)));
    }
}
