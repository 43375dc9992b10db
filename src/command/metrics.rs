//! `pushgate metrics`: the queues and deliveries in Prometheus' text format, for
//! node_exporter's textfile collector (`pushgate metrics > .../pushgate.prom.$$ && mv ...`).
//! Reads the spool; never creates it.

use super::queue::connectors;
use crate::config::{self, Config};
use crate::outcome::{Error, Outcome};
use crate::spool::Spool;
use crate::spool::log::AttemptOutcome;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

/// Print every metric of SPEC §12.
pub fn run(config_path: &Path, out: &mut dyn Write) -> Result<Outcome, Error> {
    let config = Config::load(config_path, None).ok();
    let dir = config.as_ref().map_or_else(|| config::lenient::spool_dir(config_path), |c| c.spool.dir.clone());
    let spool = Spool::at(&dir);
    let now = crate::time::unix_seconds(&crate::time::now_rfc3339()).unwrap_or(0);
    let mut text = String::new();
    let names = connectors(&spool, config.as_ref())?;
    let summaries: Vec<_> = names
        .iter()
        .map(|name| spool.summary(name).map(|s| (name, s)))
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::new(e.to_string()))?;

    family(&mut text, "pushgate_queue_pending", "gauge", "Jobs waiting to be delivered, per connector.");
    for (name, s) in &summaries {
        sample(&mut text, "pushgate_queue_pending", &[("connector", name)], s.pending as f64);
    }
    family(&mut text, "pushgate_queue_dead", "gauge", "Dead letters, per connector (pushgate queue list --dead).");
    for (name, s) in &summaries {
        sample(&mut text, "pushgate_queue_dead", &[("connector", name)], s.dead as f64);
    }
    family(
        &mut text,
        "pushgate_connector_disabled",
        "gauge",
        "1 when a 410 disabled the connector (pushgate queue enable).",
    );
    for (name, s) in &summaries {
        sample(
            &mut text,
            "pushgate_connector_disabled",
            &[("connector", name)],
            f64::from(u8::from(s.disabled.is_some())),
        );
    }
    family(
        &mut text,
        "pushgate_queue_oldest_pending_seconds",
        "gauge",
        "Age of the oldest waiting job, per connector.",
    );
    for (name, s) in &summaries {
        let age = s.oldest_pending_age(now).unwrap_or(0);
        sample(&mut text, "pushgate_queue_oldest_pending_seconds", &[("connector", name)], age as f64);
    }

    let attempts = spool.attempts().map_err(|e| Error::new(e.to_string()))?;
    let mut totals: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for attempt in &attempts {
        *totals.entry((attempt.connector.as_str(), attempt.outcome.as_str())).or_default() += 1;
        if attempt.outcome == AttemptOutcome::Delivered
            && let Some(at) = crate::time::unix_seconds(&attempt.time)
        {
            let latest = last.entry(attempt.connector.as_str()).or_insert(at);
            *latest = (*latest).max(at);
        }
    }
    family(&mut text, "pushgate_deliveries_total", "counter", "Delivery attempts kept in the log, by outcome.");
    for ((connector, outcome), count) in &totals {
        sample(
            &mut text,
            "pushgate_deliveries_total",
            &[("connector", connector), ("outcome", outcome)],
            *count as f64,
        );
    }
    family(&mut text, "pushgate_last_delivery_timestamp_seconds", "gauge", "When the connector last delivered.");
    for (connector, at) in &last {
        sample(&mut text, "pushgate_last_delivery_timestamp_seconds", &[("connector", connector)], *at as f64);
    }
    let unconfirmed =
        spool.incoming().map(|i| i.iter().filter(|e| !e.event && e.record.is_some()).count()).unwrap_or(0);
    family(
        &mut text,
        "pushgate_spool_records_unconfirmed",
        "gauge",
        "Pushes recorded by the gate, not yet confirmed or resolved.",
    );
    sample(&mut text, "pushgate_spool_records_unconfirmed", &[], unconfirmed as f64);
    out.write_all(text.as_bytes())?;
    Ok(Outcome::Success)
}

fn family(text: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(text: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", label_value(v))).collect();
    let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
    let _ = writeln!(text, "{name}{labels} {value}");
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn label_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut text = String::new();
        sample(&mut text, "m", &[("c", "a\"b\\c\nd")], 2.0);
        assert_eq!(text, "m{c=\"a\\\"b\\\\c\\nd\"} 2\n");
    }
}
