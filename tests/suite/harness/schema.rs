//! The event schemas, and a JSON Schema validator for what they use: draft-07's `$ref`,
//! `type`, `enum`, `const`, `required`, `properties`, `additionalProperties`, `items`,
//! `oneOf`, `minLength`, `minimum` and `pattern`, with `format` asserted for `date-time`
//! (RFC 3339), `uri` (RFC 3986) and `uri-template` (RFC 6570). A schema that uses anything
//! else is refused when it is loaded, so that no constraint is ever skipped silently.

use regex::Regex;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

/// `docs/event.schema.json`: the pushgate format.
pub fn event_schema() -> Schema {
    Schema::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/event.schema.json"))
}

/// GitHub's push event (`tests/data/github-push-event.schema.json`).
pub fn github_schema() -> Schema {
    Schema::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/github-push-event.schema.json"))
}

/// Fails the test with every violation when `instance` does not validate.
#[track_caller]
pub fn assert_valid(schema: &Schema, instance: &Value) {
    let errors = schema.errors(instance);
    assert!(errors.is_empty(), "does not validate:\n{}\n--- instance\n{instance:#}", errors.join("\n"));
}

/// Fails the test with every violation when `event` does not validate against
/// `docs/event.schema.json`.
#[track_caller]
pub fn assert_valid_event(event: &Value) {
    assert_valid(&event_schema(), event);
}

/// Keywords that say nothing about an instance.
const ANNOTATIONS: [&str; 7] = ["$schema", "$id", "$comment", "title", "description", "default", "examples"];

/// Keywords that constrain an instance, all of which [`Schema::check`] applies.
const ASSERTIONS: [&str; 13] = [
    "$ref",
    "type",
    "enum",
    "const",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "oneOf",
    "minLength",
    "minimum",
    "pattern",
    "format",
];

/// A loaded schema document.
pub struct Schema {
    root: Value,
    patterns: HashMap<String, Regex>,
}

impl Schema {
    /// The schema at `path`; panics when it uses what this validator does not know.
    pub fn load(path: &Path) -> Schema {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let root: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut schema = Schema { root: Value::Null, patterns: HashMap::new() };
        schema.learn(&root, "#").unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        schema.root = root;
        schema
    }

    /// Whether `instance` validates.
    pub fn is_valid(&self, instance: &Value) -> bool {
        self.errors(instance).is_empty()
    }

    /// Every violation, each as `<instance path>: <what is wrong>`.
    pub fn errors(&self, instance: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(&self.root, instance, "", &mut errors);
        errors
    }

    /// Walk a (sub)schema at `at` once: refuse unknown keywords and formats, compile patterns.
    fn learn(&mut self, schema: &Value, at: &str) -> Result<(), String> {
        let object = match schema {
            Value::Bool(_) => return Ok(()),
            Value::Object(object) => object,
            _ => return Err(format!("{at}: a schema is an object or a boolean")),
        };
        for (keyword, value) in object {
            let here = format!("{at}/{keyword}");
            match keyword.as_str() {
                k if ANNOTATIONS.contains(&k) => {}
                "definitions" | "properties" => {
                    let members = value.as_object().ok_or(format!("{here}: not an object"))?;
                    for (name, sub) in members {
                        self.learn(sub, &format!("{here}/{name}"))?;
                    }
                }
                "additionalProperties" | "items" => self.learn(value, &here)?,
                "oneOf" => {
                    let list = value.as_array().filter(|l| !l.is_empty()).ok_or(format!("{here}: not a list"))?;
                    for (i, sub) in list.iter().enumerate() {
                        self.learn(sub, &format!("{here}/{i}"))?;
                    }
                }
                "$ref" => {
                    let target = value.as_str().ok_or(format!("{here}: not a string"))?;
                    target.strip_prefix('#').ok_or(format!("{here}: only local references are known: {target}"))?;
                }
                "pattern" => {
                    let pattern = value.as_str().ok_or(format!("{here}: not a string"))?;
                    let regex = Regex::new(pattern).map_err(|e| format!("{here}: {e}"))?;
                    self.patterns.insert(pattern.to_string(), regex);
                }
                "format" => {
                    let format = value.as_str().unwrap_or_default();
                    if !["date-time", "uri", "uri-template"].contains(&format) {
                        return Err(format!("{here}: unknown format {value}"));
                    }
                }
                k if ASSERTIONS.contains(&k) => {}
                _ => return Err(format!("{here}: keyword not supported by the test harness's validator")),
            }
        }
        Ok(())
    }

    /// The schema a local `$ref` names: its fragment, percent-decoded, is a JSON pointer.
    fn resolve(&self, reference: &str) -> &Value {
        let fragment = reference.trim_start_matches('#').as_bytes();
        let mut pointer = Vec::with_capacity(fragment.len());
        let mut i = 0;
        while i < fragment.len() {
            let hex =
                fragment.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
            match (fragment[i], hex) {
                (b'%', Some(byte)) => {
                    pointer.push(byte);
                    i += 3;
                }
                (byte, _) => {
                    pointer.push(byte);
                    i += 1;
                }
            }
        }
        let pointer = String::from_utf8(pointer).unwrap_or_else(|_| panic!("$ref {reference} is not UTF-8"));
        self.root.pointer(&pointer).unwrap_or_else(|| panic!("$ref {reference} names nothing"))
    }

    /// Push onto `errors` what is wrong with `instance` (at JSON pointer `at`) by `schema`.
    fn check(&self, schema: &Value, instance: &Value, at: &str, errors: &mut Vec<String>) {
        let object = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => return errors.push(format!("{}: nothing is allowed here", shown(at))),
            Value::Object(object) => object,
            _ => unreachable!("refused when loaded"),
        };
        // Draft-07: beside a `$ref`, every other keyword is ignored.
        if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
            return self.check(self.resolve(reference), instance, at, errors);
        }
        let mut fail = |what: String| errors.push(format!("{}: {what}", shown(at)));
        for (keyword, value) in object {
            match keyword.as_str() {
                "type" => {
                    let types: Vec<&str> = match value {
                        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
                        _ => value.as_str().into_iter().collect(),
                    };
                    if !types.iter().any(|t| has_type(instance, t)) {
                        fail(format!("{instance} is not of type {value}"));
                    }
                }
                "enum" if !value.as_array().unwrap().iter().any(|v| same(v, instance)) => {
                    fail(format!("{instance} is not one of {value}"));
                }
                "const" if !same(value, instance) => fail(format!("{instance} is not {value}")),
                "required" => {
                    if let Value::Object(members) = instance {
                        for name in value.as_array().unwrap().iter().filter_map(Value::as_str) {
                            if !members.contains_key(name) {
                                fail(format!("{name:?} is required"));
                            }
                        }
                    }
                }
                "minLength" => {
                    if let Value::String(text) = instance
                        && (text.chars().count() as f64) < value.as_f64().unwrap()
                    {
                        fail(format!("{instance} is shorter than {value}"));
                    }
                }
                "minimum" => {
                    if let Some(number) = instance.as_f64()
                        && number < value.as_f64().unwrap()
                    {
                        fail(format!("{instance} is less than {value}"));
                    }
                }
                "pattern" => {
                    if let Value::String(text) = instance
                        && !self.patterns[value.as_str().unwrap()].is_match(text)
                    {
                        fail(format!("{instance} does not match {value}"));
                    }
                }
                "format" => {
                    if let Value::String(text) = instance
                        && !has_format(text, value.as_str().unwrap())
                    {
                        fail(format!("{instance} is not a {value}"));
                    }
                }
                _ => {}
            }
        }
        if let Value::Object(members) = instance {
            self.check_members(object, members, at, errors);
        }
        if let (Some(items), Value::Array(elements)) = (object.get("items"), instance) {
            for (i, element) in elements.iter().enumerate() {
                self.check(items, element, &format!("{at}/{i}"), errors);
            }
        }
        if let Some(Value::Array(choices)) = object.get("oneOf") {
            let valid = choices.iter().filter(|choice| self.fits(choice, instance, at)).count();
            if valid != 1 {
                errors.push(format!("{}: {instance} matches {valid} of oneOf's schemas, not 1", shown(at)));
            }
        }
    }

    /// `properties` and `additionalProperties` over the members of an object.
    fn check_members(
        &self,
        schema: &Map<String, Value>,
        members: &Map<String, Value>,
        at: &str,
        errors: &mut Vec<String>,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        for (name, member) in members {
            let here = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
            match properties.and_then(|p| p.get(name)) {
                Some(property) => self.check(property, member, &here, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{}: {name:?} is not allowed", shown(at))),
                    Some(additional) => self.check(additional, member, &here, errors),
                    None => {}
                },
            }
        }
    }

    fn fits(&self, schema: &Value, instance: &Value, at: &str) -> bool {
        let mut errors = Vec::new();
        self.check(schema, instance, at, &mut errors);
        errors.is_empty()
    }
}

fn shown(at: &str) -> &str {
    if at.is_empty() { "(root)" } else { at }
}

/// Whether `value` is of JSON Schema type `name` (an integer is a number without a fraction).
fn has_type(value: &Value, name: &str) -> bool {
    match (name, value) {
        ("null", Value::Null) | ("boolean", Value::Bool(_)) | ("number", Value::Number(_)) => true,
        ("string", Value::String(_)) | ("array", Value::Array(_)) | ("object", Value::Object(_)) => true,
        ("integer", Value::Number(n)) => n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

/// JSON equality, where numbers are equal by value (`1` is `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), _, _) => x == y,
            (_, _, Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn has_format(text: &str, format: &str) -> bool {
    match format {
        "date-time" => is_date_time(text),
        "uri" => is_uri(text),
        "uri-template" => is_uri_template(text),
        _ => unreachable!("refused when loaded"),
    }
}

/// RFC 3339's `date-time`, with its ranges: a real day of the month, and a leap second only
/// at 23:59 UTC.
fn is_date_time(text: &str) -> bool {
    static FORM: OnceLock<Regex> = OnceLock::new();
    let form = FORM.get_or_init(|| {
        Regex::new(
            r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([Zz]|([+-])([0-9]{2}):([0-9]{2}))$",
        )
        .unwrap()
    });
    let Some(parts) = form.captures(text) else { return false };
    let number = |i: usize| parts.get(i).map_or(0, |m| m.as_str().parse::<i64>().unwrap());
    let (year, month, day) = (number(1), number(2), number(3));
    let (hour, minute, second) = (number(4), number(5), number(6));
    let (offset_hour, offset_minute) = (number(10), number(11));
    let leap_year = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap_year => 29,
        2 => 28,
        _ => return false,
    };
    if !(1..=days).contains(&day) || hour > 23 || minute > 59 || second > 60 || offset_hour > 23 || offset_minute > 59 {
        return false;
    }
    if second == 60 {
        let sign = if parts.get(9).is_some_and(|s| s.as_str() == "-") { -1 } else { 1 };
        let utc = (hour * 60 + minute - sign * (offset_hour * 60 + offset_minute)).rem_euclid(24 * 60);
        return utc == 23 * 60 + 59;
    }
    true
}

/// RFC 3986's `URI`: a scheme, then a hierarchical part, a query and a fragment made of
/// the characters each allows (anything else percent-encoded).
fn is_uri(text: &str) -> bool {
    static FORM: OnceLock<Regex> = OnceLock::new();
    let form = FORM.get_or_init(|| {
        let (unreserved, sub_delims, pct) = (r"A-Za-z0-9\-._~", r"!$&'()*+,;=", "%[0-9A-Fa-f]{2}");
        let pchar = format!("(?:[{unreserved}{sub_delims}:@]|{pct})");
        let userinfo = format!("(?:[{unreserved}{sub_delims}:]|{pct})*");
        let reg_name = format!("(?:[{unreserved}{sub_delims}]|{pct})*");
        let host = format!(r"(?:\[(?P<ip>[^\[\]/?#]*)\]|{reg_name})");
        let authority = format!("(?:{userinfo}@)?{host}(?::[0-9]*)?");
        let (segment, segment_nz) = (format!("{pchar}*"), format!("{pchar}+"));
        let hier =
            format!("(?://{authority}(?:/{segment})*|/(?:{segment_nz}(?:/{segment})*)?|{segment_nz}(?:/{segment})*|)");
        let query = format!("(?:{pchar}|[/?])*");
        Regex::new(&format!(r"^[A-Za-z][A-Za-z0-9+\-.]*:{hier}(?:\?{query})?(?:#{query})?$")).unwrap()
    });
    let Some(parts) = form.captures(text) else { return false };
    parts.name("ip").is_none_or(|ip| is_ip_literal(ip.as_str()))
}

/// What RFC 3986 allows between `[` and `]`: an IPv6 address or an `IPvFuture`.
fn is_ip_literal(text: &str) -> bool {
    static FUTURE: OnceLock<Regex> = OnceLock::new();
    let future = FUTURE.get_or_init(|| Regex::new(r"^[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+$").unwrap());
    text.parse::<std::net::Ipv6Addr>().is_ok() || future.is_match(text)
}

/// RFC 6570's URI Template (level 4): literals (with errata 6937, which allows `'`), and
/// expressions of an optional operator and variables with an optional prefix length or
/// explode.
fn is_uri_template(text: &str) -> bool {
    static FORM: OnceLock<Regex> = OnceLock::new();
    let form = FORM.get_or_init(|| {
        let pct = "%[0-9A-Fa-f]{2}";
        let ucschar = r"\x{A0}-\x{D7FF}\x{F900}-\x{FDCF}\x{FDF0}-\x{FFEF}\x{10000}-\x{1FFFD}\x{20000}-\x{2FFFD}\x{30000}-\x{3FFFD}\x{40000}-\x{4FFFD}\x{50000}-\x{5FFFD}\x{60000}-\x{6FFFD}\x{70000}-\x{7FFFD}\x{80000}-\x{8FFFD}\x{90000}-\x{9FFFD}\x{A0000}-\x{AFFFD}\x{B0000}-\x{BFFFD}\x{C0000}-\x{CFFFD}\x{D0000}-\x{DFFFD}\x{E1000}-\x{EFFFD}";
        let iprivate = r"\x{E000}-\x{F8FF}\x{F0000}-\x{FFFFD}\x{100000}-\x{10FFFD}";
        let literal = format!(r"(?:[!#$&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~{ucschar}{iprivate}]|{pct})");
        let varchar = format!("(?:[A-Za-z0-9_]|{pct})");
        let varspec = format!(r"{varchar}(?:\.?{varchar})*(?::[1-9][0-9]{{0,3}}|\*)?");
        let expression = format!(r"\{{[+#./;?&=,!@|]?{varspec}(?:,{varspec})*\}}");
        Regex::new(&format!("^(?:{literal}|{expression})*$")).unwrap()
    });
    form.is_match(text)
}

#[test]
fn the_validator_knows_the_formats_it_asserts() {
    for valid in ["2024-02-29T23:59:60Z", "1990-12-31T15:59:60-08:00", "2026-12-02t10:12:32.282+01:00"] {
        assert!(is_date_time(valid), "{valid}");
    }
    for invalid in
        ["yesterday", "2023-02-29T00:00:00Z", "2024-01-01T12:59:60Z", "2024-01-01 00:00:00Z", "2024-1-01T00:00:00Z"]
    {
        assert!(!is_date_time(invalid), "{invalid}");
    }
    for valid in ["https://git.example.org/server", "http://[::1]:8080/a?b#c", "urn:isbn:0451450523", "mailto:a@b.c"] {
        assert!(is_uri(valid), "{valid}");
    }
    for invalid in ["not a uri", "/relative/path", "https://x/{owner}", "http://[::g]/", "https://x/%zz"] {
        assert!(!is_uri(invalid), "{invalid}");
    }
    for valid in
        ["https://api.github.com/repos/o/r/git/refs{/sha}", "{+path,x}/here", "{?q,n:3}{&explode*}", "O'Reilly{/id}"]
    {
        assert!(is_uri_template(valid), "{valid}");
    }
    for invalid in ["{unclosed", "{}", "{a b}", "x{/y:0}", "has space"] {
        assert!(!is_uri_template(invalid), "{invalid}");
    }
}
