//! Time: the wall clock in nanoseconds and the duration syntax of flags, trigger specs and
//! HTTP fields (`10ms`, `1s`, `5m`, `1h`, `1d`).
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

/// Parses `10ms`, `1s`, `5m`, `1h`, `1d` (and `500us`, `100ns`). Zero is refused.
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
