//! Suggestions in configuration errors: the likely spelling of an unknown key, group or
//! operation, and why a repository's file refuses a global key.

use super::{REPO_FILE, raw};
use std::path::Path;

/// serde's messages, made more helpful: a likely spelling for an unknown key, and why a
/// repository file refuses global keys.
pub fn explain_toml_error(message: &str, path: &Path) -> String {
    let message = message.trim_end();
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((key, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let is_repo_file = path.file_name().is_some_and(|n| n == REPO_FILE);
    if is_repo_file && raw::GLOBAL_ONLY_KEYS.contains(&key) {
        return format!("`{key}` may only be set in the global configuration, not in a repository's {REPO_FILE}");
    }
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match closest(key, &candidates) {
        Some(best) => format!("unknown key `{key}` (did you mean `{best}`?)"),
        None => format!("unknown key `{key}`{expected}"),
    }
}

/// The full ref name someone who wrote `name` (`main`, `tags/v1`) most likely meant.
pub fn full_ref_name(name: &str) -> String {
    if name.starts_with("heads/") || name.starts_with("tags/") || name.starts_with('*') {
        format!("refs/{}", name.trim_start_matches('/'))
    } else {
        format!("refs/heads/{name}")
    }
}

/// ` (did you mean `<prefix><candidate>`?)` for the closest candidate, or nothing.
pub fn suggestion<'a>(word: &str, candidates: impl Iterator<Item = &'a str>, prefix: &str) -> String {
    let candidates: Vec<&str> = candidates.collect();
    closest(word, &candidates).map(|c| format!(" (did you mean `{prefix}{c}`?)")).unwrap_or_default()
}

fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_suggested_and_far_ones_not() {
        assert_eq!(edit_distance("alow", "allow"), 1);
        assert_eq!(suggestion("creat", ["create", "delete"].into_iter(), ""), " (did you mean `create`?)");
        assert_eq!(suggestion("zzzzzz", ["create"].into_iter(), ""), "");
    }
}
