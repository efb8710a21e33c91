//! Time: the wall clock in nanoseconds, the duration syntax of flags, trigger specs and
//! HTTP fields (`10ms`, `1s`, `5m`, `1h`, `1d`), and instants as RFC 3339 or nanoseconds.
//!
//! A leaf: it depends on nothing in the crate, so the server, the CLI, the HTTP layer, storage
//! and the engine all share it without a cycle.

use std::time::Duration;

/// The wall clock in nanoseconds since the epoch (what server-side timestamps and retention
/// periods count from); 0 before the epoch, saturating far after it.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64)
}

/// The wall clock in milliseconds since the epoch (token times count in these, as InfluxDB's).
pub fn now_ms() -> i64 {
    now_ns() / 1_000_000
}

/// An instant as RFC 3339 (`2026-12-07T10:00:00Z`, any offset) or as integer nanoseconds since
/// the epoch, in nanoseconds since the epoch.
pub fn parse_instant(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ns) = s.parse::<i64>() {
        return Ok(ns);
    }
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("'{s}' is not an RFC 3339 time (2026-01-02T03:04:05Z) nor nanoseconds since the epoch: {e}"))?;
    t.timestamp_nanos_opt().ok_or_else(|| format!("'{s}' is outside the nanosecond range (years 1677 to 2262)"))
}

/// Nanoseconds since the epoch as RFC 3339 in UTC.
pub fn format_instant(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid duration '{s}': expected a number and a unit like 10ms, 1s, 5m"))?;
    let d = match unit {
        "ns" => Duration::from_nanos(n),
        "us" | "µs" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86400)),
        _ => return Err(format!("invalid duration '{s}': unknown unit '{unit}' (use ns, us, ms, s, m, h or d)")),
    };
    if d.is_zero() {
        return Err(format!("invalid duration '{s}': must be greater than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn instants_are_rfc3339_or_nanoseconds_and_format_back() {
        assert_eq!(super::parse_instant("1700000000000000000"), Ok(1_700_000_000_000_000_000));
        assert_eq!(super::parse_instant("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000_000_000));
        assert_eq!(super::parse_instant("2023-11-14T23:13:20+01:00"), Ok(1_700_000_000_000_000_000));
        assert!(super::parse_instant("yesterday").unwrap_err().contains("RFC 3339"));
        assert_eq!(super::format_instant(1_700_000_000_500_000_000), "2023-11-14T22:13:20.500Z");
    }

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("10x").is_err());
    }

    #[test]
    fn the_clock_is_after_2020() {
        assert!(now_ns() > 1_577_836_800_000_000_000);
    }
}
