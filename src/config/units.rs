//! Sizes (`"5 MiB"`, `"100MB"`) and durations (`"500ms"`, `"10s"`, `"3d"`) as written in the
//! configuration, and sizes as shown back to people.

use std::fmt;
use std::time::Duration;

/// A size limit, kept with the text the admin wrote so messages quote it back unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Size {
    pub bytes: u64,
    pub text: String,
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

pub fn parse_size(text: &str) -> Result<Size, String> {
    let (number, unit) = split_number(text)?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => {
            return Err(format!("unknown size unit {unit:?} in {text:?} (use B, KB, MB, GB, KiB, MiB or GiB)"));
        }
    };
    let bytes = number * multiplier as f64;
    if !(0.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("size {text:?} is out of range"));
    }
    Ok(Size { bytes: bytes as u64, text: text.trim().to_string() })
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(text)?;
    let seconds: f64 = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 7.0 * 86_400.0,
        _ => return Err(format!("unknown duration unit {unit:?} in {text:?} (use ms, s, m, h, d or w, e.g. \"10s\")")),
    };
    Duration::try_from_secs_f64(number * seconds).map_err(|_| format!("duration {text:?} is out of range"))
}

fn split_number(text: &str) -> Result<(f64, &str), String> {
    let text = text.trim();
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (digits, unit) = text.split_at(end);
    let number: f64 = digits.parse().map_err(|_| format!("{text:?} does not start with a number"))?;
    Ok((number, unit.trim()))
}

/// A byte count for people: `512 B`, `3.0 KiB`, `52.4 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5 MiB").unwrap().bytes, 5 << 20);
        assert_eq!(parse_size("100MB").unwrap().bytes, 100_000_000);
        assert_eq!(parse_size("1.5 KiB").unwrap().bytes, 1536);
        assert_eq!(parse_size("12").unwrap().bytes, 12);
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("1e999 GiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("3d").unwrap(), Duration::from_secs(3 * 86_400));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration(&format!("{}s", "9".repeat(400))).is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(52_400_000), "50.0 MiB");
        assert_eq!(human_size((52.4 * 1048576.0) as u64), "52.4 MiB");
    }
}
