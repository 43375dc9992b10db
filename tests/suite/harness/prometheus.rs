//! A strict reader of Prometheus' text exposition format (version 0.0.4), as node_exporter's
//! textfile collector reads it: what `pushgate metrics` prints must pass it.

use std::collections::{BTreeMap, BTreeSet};

/// One sample: its metric name, labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parse `text`, refusing anything the format does not allow: a malformed line, a name or
/// label that is not one, a bad escape or value, a family with two TYPE lines or samples
/// before its TYPE, a family split in two, or the same series twice.
pub fn parse_metrics(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut finished = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series = BTreeSet::new();
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the text does not end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let fail = |why: &str| Err(format!("line {}: {why}: {line:?}", n + 1));
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (keyword, name, tail) = (words.next(), words.next().unwrap_or(""), words.next().unwrap_or(""));
            if !matches!(keyword, Some("HELP" | "TYPE")) {
                continue;
            }
            if !metric_name(name) {
                return fail("not a metric name");
            }
            if finished.contains(name) {
                return fail("a family described after its samples ended");
            }
            if keyword == Some("TYPE") {
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&tail) {
                    return fail("unknown type");
                }
                if typed.insert(name.to_string(), tail.to_string()).is_some() {
                    return fail("a second TYPE line");
                }
                if samples.iter().any(|s: &Sample| s.name == name) {
                    return fail("TYPE after the family's samples");
                }
            } else if !helped.insert(name.to_string()) || !help_text(tail) {
                return fail("a second HELP line, or a bad escape in it");
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let sample = match sample(line) {
            Some(sample) => sample,
            None => return fail("not a sample"),
        };
        if current.as_deref() != Some(sample.name.as_str()) {
            if let Some(previous) = current.take() {
                finished.insert(previous);
            }
            if finished.contains(&sample.name) {
                return fail("a family split in two");
            }
            current = Some(sample.name.clone());
        }
        if typed.get(&sample.name).is_some_and(|t| t == "counter") && sample.value < 0.0 {
            return fail("a negative counter");
        }
        if !series.insert((sample.name.clone(), format!("{:?}", sample.labels))) {
            return fail("the same series twice");
        }
        samples.push(sample);
    }
    Ok(samples)
}

fn metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// HELP text may escape only `\\` and `\n`.
fn help_text(text: &str) -> bool {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
            return false;
        }
    }
    true
}

fn sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    if !metric_name(name) {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = inner.split_once("=\"")?;
            if !label_name(key) {
                return None;
            }
            let (value, after) = label_value(after)?;
            if labels.insert(key.to_string(), value).is_some() {
                return None;
            }
            inner = match after.strip_prefix(',') {
                Some(next) => next,
                None if after.starts_with('}') => after,
                None => return None,
            };
        }
    }
    let mut fields = rest.strip_prefix(' ')?.split(' ');
    let value = match fields.next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        text => text.parse().ok()?,
    };
    if let Some(timestamp) = fields.next() {
        timestamp.parse::<i64>().ok()?;
    }
    if fields.next().is_some() {
        return None;
    }
    Some(Sample { name: name.to_string(), labels, value })
}

/// A quoted label value's text (after its opening quote) and what follows its closing one.
fn label_value(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => value.push(match chars.next()?.1 {
                '\\' => '\\',
                '"' => '"',
                'n' => '\n',
                _ => return None,
            }),
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_takes_the_format_and_refuses_what_it_does_not_allow() {
        let good = "# HELP a_total Things, \\\\ and \\n.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 3\na_total 1 1700000000000\n# TYPE b gauge\nb NaN\n";
        let samples = parse_metrics(good).unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].labels["y"], "q\"\\\n");
        for bad in [
            "a 1",
            "a{x=\"1\"} 1\nb 2\na 3\n",
            "# TYPE a gauge\n# TYPE a gauge\na 1\n",
            "a 1\n# TYPE a gauge\n",
            "a{x=\"\\q\"} 1\n",
            "a{x=1} 1\n",
            "1a 1\n",
            "a one\n",
            "a 1\na 2\n",
            "# TYPE a counter\na -1\n",
            "a{__x=\"1\"} 1\n",
        ] {
            assert!(parse_metrics(bad).is_err(), "{bad:?} passed");
        }
    }
}
