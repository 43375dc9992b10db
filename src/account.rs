//! Accounts of this machine, as messages name them: `git (uid 998)`, so that an admin told
//! who owns a file and who the hooks run as knows what to `chown` to.

/// The user this process runs as (its effective uid).
pub fn current() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// `name (uid N)`, or `uid N` for a uid with no account.
pub fn named(uid: u32) -> String {
    match name_of(uid) {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// What `chown` takes for `uid`: its name, else the number.
pub fn chown_name(uid: u32) -> String {
    name_of(uid).unwrap_or_else(|| uid.to_string())
}

/// The account name of `uid`, from the password database.
fn name_of(uid: u32) -> Option<String> {
    // SAFETY: a passwd of null pointers and zeros is a valid value to be filled in.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to memory owned here and sized as passed; the strings the
    // entry points at live in `buffer`, which outlives their use below.
    let status = unsafe { libc::getpwuid_r(uid, &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found) };
    if status != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name is a NUL-terminated string in `buffer`.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_named_and_a_uid_without_an_account_is_a_number() {
        assert_eq!(named(0), "root (uid 0)");
        assert_eq!(chown_name(0), "root");
        assert_eq!(named(4_000_000_000), "uid 4000000000");
        assert_eq!(chown_name(4_000_000_000), "4000000000");
    }
}
