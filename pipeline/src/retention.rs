//! Retention periods: how long a database keeps rows, as InfluxDB 3 spells them.
//!
//! A period is a whole number and a unit: `h`, `d`, `w`, `mo` (30 days) or `y` (365 days);
//! `none` (or `infinite`) keeps rows forever. Minutes and seconds are refused, as InfluxDB 3
//! refuses them. A leaf module: the server, the CLI and the catalog share it.

/// Parses a retention period into nanoseconds (`None`: keep forever).
pub fn parse(s: &str) -> Result<Option<u64>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("infinite") {
        return Ok(None);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let bad = || format!("invalid retention period '{s}': expected a number and a unit h, d, w, mo or y (e.g. 30d), or none");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let hours: u64 = match unit {
        "h" => 1,
        "d" => 24,
        "w" => 24 * 7,
        "mo" => 24 * 30,
        "y" => 24 * 365,
        _ => return Err(bad()),
    };
    n.checked_mul(hours)
        .and_then(|h| h.checked_mul(3_600_000_000_000))
        .filter(|&ns| ns <= i64::MAX as u64)
        .map(Some)
        .ok_or_else(|| format!("invalid retention period '{s}': too long"))
}

/// The period in the largest unit that divides it whole (`none` for forever).
pub fn format(ns: Option<u64>) -> String {
    let Some(ns) = ns else { return "none".into() };
    let hours = ns / 3_600_000_000_000;
    for (unit, h) in [("y", 24 * 365), ("w", 24 * 7), ("d", 24), ("h", 1)] {
        if hours > 0 && hours % h == 0 {
            return format!("{}{unit}", hours / h);
        }
    }
    format!("{hours}h")
}

/// The oldest time (ns since the epoch) a row may have at `now_ns` and still be kept.
pub fn cutoff(period_ns: Option<u64>, now_ns: i64) -> Option<i64> {
    period_ns.map(|p| now_ns.saturating_sub(p.min(i64::MAX as u64) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000_000_000;

    #[test]
    fn periods_parse_in_influxdb_3_units_and_print_back() {
        assert_eq!(parse("1h"), Ok(Some(H)));
        assert_eq!(parse("30d"), Ok(Some(30 * 24 * H)));
        assert_eq!(parse("2w"), Ok(Some(14 * 24 * H)));
        assert_eq!(parse("1mo"), Ok(Some(30 * 24 * H)));
        assert_eq!(parse("1y"), Ok(Some(365 * 24 * H)));
        assert_eq!(parse("none"), Ok(None));
        for bad in ["10m", "30s", "d", "-1d", "1 d", "", "99999999999y"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(format(Some(30 * 24 * H)), "30d");
        assert_eq!(format(Some(14 * 24 * H)), "2w");
        assert_eq!(format(Some(5 * H)), "5h");
        assert_eq!(format(None), "none");
        assert_eq!(cutoff(Some(10), 100), Some(90));
        assert_eq!(cutoff(None, 100), None);
    }
}
