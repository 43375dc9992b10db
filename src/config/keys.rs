//! Every unknown key of a file, not just the first: serde stops at the first one, so the
//! file is first read as plain TOML, walked against the keys each table takes, and the
//! unknown ones are reported (with a likely spelling) and left out before serde reads it.

use super::error::{ConfigError, Source};
use super::suggest::suggestion;
use super::{REPO_FILE, raw};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// What a table holds.
pub enum Shape {
    /// A value (or a table whose keys are free: `[groups]`, `headers`).
    Value,
    /// A table with these keys.
    Table(&'static [(&'static str, Shape)]),
    /// A table of tables with free names (`[users.<name>]`).
    Named(&'static Shape),
    /// An array of tables (`[[rule]]`).
    Tables(&'static Shape),
}

use Shape::{Named, Table, Tables, Value};

const RULE: Shape = Table(&[
    ("repos", Value),
    ("refs", Value),
    ("paths", Value),
    ("users", Value),
    ("allow", Value),
    ("deny", Value),
    ("message", Value),
    ("mode", Value),
]);

const EXTENSION: Shape = Table(&[
    ("name", Value),
    ("type", Value),
    ("phase", Value),
    ("url", Value),
    ("command", Value),
    ("secret_env", Value),
    ("secret_file", Value),
    ("format", Value),
    ("headers", Value),
    ("refs", Value),
    ("repos", Value),
    ("actions", Value),
    ("timeout", Value),
    ("events", Value),
    ("enabled", Value),
    ("on_error", Value),
    ("mode", Value),
    ("env", Value),
    ("max_commits", Value),
    ("every", Value),
    ("batch", Table(&[("max", Value), ("wait", Value)])),
]);

const CHECK: Shape = Table(&[
    ("repos", Value),
    ("refs", Value),
    ("commit_message", Value),
    ("author_email", Value),
    ("committer_email", Value),
    ("linear_history", Value),
    ("max_files_changed", Value),
    ("max_blob_size", Value),
    ("forbid_paths", Value),
    ("require_signed", Value),
    ("author_is_pusher", Value),
    ("exempt", Value),
    ("mode", Value),
]);

/// The global file.
pub const GLOBAL: Shape = Table(&[
    ("repos_root", Value),
    ("identity", Table(&[("env", Value), ("fold_case", Value)])),
    ("groups", Value),
    ("users", Named(&Table(&[("emails", Value)]))),
    ("limits", Table(&[("max_blob_size", Value)])),
    ("audit", Table(&[("file", Value)])),
    ("server", Table(&[("base_url", Value), ("owner", Value)])),
    (
        "spool",
        Table(&[
            ("dir", Value),
            ("retry", Value),
            ("keep_log", Value),
            ("on_full", Value),
            ("backend", Value),
            ("url_env", Value),
            ("url_file", Value),
            ("lease", Value),
            ("ca_file", Value),
        ]),
    ),
    ("max_commits", Value),
    ("rule", Tables(&RULE)),
    ("extension", Tables(&EXTENSION)),
    ("check", Tables(&CHECK)),
]);

/// A repository's own `pushgate.toml`.
pub const REPOSITORY: Shape =
    Table(&[("rule", Tables(&RULE)), ("extension", Tables(&EXTENSION)), ("check", Tables(&CHECK))]);

/// What reading a file as plain TOML found: the errors, and where the tables that lost a
/// key start (their own "missing key" complaints would only repeat the reason).
#[derive(Default)]
pub struct Found {
    pub errors: Vec<ConfigError>,
    pub tainted: Vec<usize>,
}

/// Report every key `table` (starting at byte `start`) does not take, and take it out.
pub fn remove_unknown(table: &mut DeTable, start: usize, shape: &Shape, at: &Source, found: &mut Found) {
    let Table(fields) = shape else { return };
    let keys: Vec<_> = table.keys().cloned().collect();
    for key in keys {
        let name: &str = key.get_ref();
        match fields.iter().find(|(field, _)| *field == name) {
            Some((_, inner)) => {
                if let Some(value) = table.get_mut(&key) {
                    walk(value, inner, at, found);
                }
            }
            None => {
                found.errors.push(at.error(key.span(), unknown(name, fields, at)));
                found.tainted.push(start);
                table.remove(&key);
            }
        }
    }
}

/// Take out the innermost key (or array element) whose value holds byte `at` of the file,
/// noting where its table starts; whether something was taken out. Containers are searched
/// whatever their own span says (an array of tables spans only its first header).
pub fn remove_at(table: &mut DeTable, start: usize, at: usize, tainted: &mut Vec<usize>) -> bool {
    let keys: Vec<_> = table.keys().cloned().collect();
    for key in keys {
        let Some(value) = table.get_mut(&key) else { continue };
        if remove_inside(value, at, tainted) {
            return true;
        }
        if key.span().contains(&at) || value.span().contains(&at) {
            table.remove(&key);
            tainted.push(start);
            return true;
        }
    }
    false
}

/// Take out what inside `value` holds `at`: whether something inside was (else the caller
/// takes out `value` itself, if it holds `at`).
fn remove_inside(value: &mut Spanned<DeValue>, at: usize, tainted: &mut Vec<usize>) -> bool {
    let start = value.span().start;
    match value.get_mut() {
        DeValue::Table(table) => remove_at(table, start, at, tainted),
        DeValue::Array(items) => {
            for index in 0..items.len() {
                if remove_inside(&mut items.as_mut()[index], at, tainted) {
                    return true;
                }
                if items[index].span().contains(&at) {
                    let mut kept = toml::de::DeArray::new();
                    for (i, item) in items.iter().enumerate() {
                        if i != index {
                            kept.push(item.clone());
                        }
                    }
                    *items = kept;
                    return true;
                }
            }
            false
        }
        _ => false,
    }
}

fn walk(value: &mut Spanned<DeValue>, shape: &Shape, at: &Source, found: &mut Found) {
    let start = value.span().start;
    match (value.get_mut(), shape) {
        (DeValue::Table(table), Table(_)) => remove_unknown(table, start, shape, at, found),
        (DeValue::Table(table), Named(inner)) => {
            for (_, named) in table.iter_mut() {
                walk(named, inner, at, found);
            }
        }
        (DeValue::Array(items), Tables(inner)) => {
            for item in items.iter_mut() {
                walk(item, inner, at, found);
            }
        }
        _ => {}
    }
}

fn unknown(key: &str, fields: &[(&str, Shape)], at: &Source) -> String {
    let is_repo_file = at.repository;
    if is_repo_file && raw::GLOBAL_ONLY_KEYS.contains(&key) {
        return format!("`{key}` may only be set in the global configuration, not in a repository's {REPO_FILE}");
    }
    let hint = suggestion(key, fields.iter().map(|(f, _)| *f), "");
    if hint.is_empty() {
        let known: Vec<&str> = fields.iter().map(|(f, _)| *f).collect();
        format!("unknown key `{key}` (known here: {})", known.join(", "))
    } else {
        format!("unknown key `{key}`{hint}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key the shapes list is one serde takes: a table holding only that key never
    /// fails with "unknown field" (the lists cannot drift from `raw`).
    #[test]
    fn the_shapes_know_exactly_the_keys_serde_takes() {
        let Table(global) = GLOBAL else { panic!() };
        for (key, shape) in global {
            let text = match shape {
                Table(fields) => fields.iter().map(|(f, _)| format!("[{key}]\n{f} = 1\n")).collect::<Vec<_>>(),
                Tables(inner) => {
                    let Table(fields) = inner else { panic!() };
                    fields.iter().map(|(f, _)| format!("[[{key}]]\n{f} = 1\n")).collect()
                }
                Named(_) => vec![format!("[{key}.x]\nemails = 1\n")],
                Value => vec![format!("{key} = 1\n")],
            };
            for text in text {
                let e = toml::from_str::<raw::GlobalFile>(&text).err().map(|e| e.to_string()).unwrap_or_default();
                assert!(!e.contains("unknown field"), "{text}: {e}");
            }
        }
        let e = toml::from_str::<raw::GlobalFile>("[[rule]]\nnot_a_key = 1\n").unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
    }
}
