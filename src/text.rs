//! Text from outside the process (ref names, paths, commit messages, extension output, hook
//! input) made safe to show on a terminal or in a log line: the one place that escapes it.

use gix::bstr::ByteSlice;

/// How many lines of an extension's output or refusal a pusher is shown.
pub const MAX_LINES: usize = 40;
/// How long a line of it may be.
const MAX_LINE_CHARS: usize = 300;

/// Whether a terminal could take `c` for something other than text: C0 and C1 controls
/// (U+0085, U+009B CSI, ...) and the bidirectional overrides that reorder what is shown.
fn is_hostile(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A value from outside, quoted on one line: control characters escaped, long values cut.
pub fn shown(value: &str) -> String {
    format!("\"{}\"", one_line(value, Some(200)))
}

/// As [`shown`], for bytes that need not be UTF-8.
pub fn shown_bytes(value: &[u8]) -> String {
    shown(&String::from_utf8_lossy(value))
}

/// Text from outside, fit for one terminal line: control characters escaped (newlines,
/// escape sequences), and cut with `…` past `max` characters when given.
pub fn one_line(text: &str, max: Option<usize>) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        if Some(i) == max {
            out.push('…');
            break;
        }
        if is_hostile(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A path from the repository, safe on one terminal line: invalid UTF-8 replaced, control
/// characters escaped.
pub fn path(path: &[u8]) -> String {
    one_line(&path.to_str_lossy(), None)
}

/// Output from outside made fit for a pusher's terminal: lossy UTF-8, control characters
/// escaped, long lines cut, at most [`MAX_LINES`] lines (with a count of the rest).
pub fn lines(output: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(output);
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut lines: Vec<String> = all.iter().take(MAX_LINES).map(|line| one_line(line, Some(MAX_LINE_CHARS))).collect();
    if all.len() > MAX_LINES {
        lines.push(format!("… and {} more lines", all.len() - MAX_LINES));
    }
    lines
}

/// `value` as one line of JSON in which no character a terminal acts on appears raw: serde
/// escapes C0 controls, this also escapes DEL, C1 controls and bidirectional overrides.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    escape_json(serde_json::to_string(value).unwrap_or_else(|_| "{}".into()))
}

/// As [`json`], indented for people.
pub fn json_pretty<T: serde::Serialize + ?Sized>(value: &T) -> String {
    escape_json(serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into()))
}

/// JSON's structure is ASCII, so a hostile character can only be inside a string, where
/// `\uXXXX` stands for it (all of them are in the Basic Multilingual Plane).
fn escape_json(text: String) -> String {
    if !text.chars().any(is_hostile) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hostile(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_escapes_control_characters() {
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
        assert_eq!(one_line("x\u{9b}31m\u{85}\u{202e}y", None), "x\\u{9b}31m\\u{85}\\u{202e}y");
    }

    #[test]
    fn json_escapes_what_terminals_act_on_and_stays_json() {
        let value = serde_json::json!({"ref": "refs/heads/a\u{9b}b\u{202e}", "n": 1, "plain": "é"});
        let text = json(&value);
        assert!(text.is_ascii() || !text.chars().any(is_hostile), "{text}");
        assert!(text.contains("\\u009b") && text.contains("\\u202e") && text.contains('é'), "{text}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), value);
    }

    #[test]
    fn output_is_escaped_and_capped() {
        let out = lines(b"ok\n\x1b[31mred\x1b[0m\n\n");
        assert_eq!(out, ["ok", "\\u{1b}[31mred\\u{1b}[0m"]);
        let many: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let out = lines(many.as_bytes());
        assert_eq!(out.len(), MAX_LINES + 1);
        assert_eq!(out[MAX_LINES], "… and 60 more lines");
        assert!(lines("x".repeat(1000).as_bytes())[0].ends_with('…'));
    }
}
