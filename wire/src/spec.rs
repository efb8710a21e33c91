//! Trigger specifications: what makes a trigger fire, parsed from its text form.
//!
//! `table:NAME`, `all_tables`, `every:DUR`, `cron:EXPR` (alias `schedule:EXPR`), `request:PATH`
//! (alias `path:PATH`). A spec that cannot fire (`every:0s`, a bad cron expression, an empty
//! name) is refused here with a message for the user, so no trigger is ever stored that would
//! fail later. It only parses; the scheduler and dispatcher act on the result.

use std::time::Duration;

use crate::time::parse_duration;

/// The Python function a plugin must define for each kind of trigger.
pub const PROCESS_WRITES: &str = "process_writes";
pub const PROCESS_SCHEDULED_CALL: &str = "process_scheduled_call";
pub const PROCESS_REQUEST: &str = "process_request";

#[derive(Debug, Clone, PartialEq)]
pub enum TriggerSpec {
    /// After each WAL flush holding rows of this table.
    Table(String),
    /// After each WAL flush, with every table's rows.
    AllTables,
    /// Every period, aligned to the epoch.
    Every(Duration),
    /// On a cron schedule (always stored in the 6/7-field form, seconds first).
    Cron(String),
    /// On `GET|POST /api/v3/engine/PATH`.
    Request(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid trigger specification '{spec}': {reason}")]
pub struct SpecError {
    pub spec: String,
    pub reason: String,
}

impl TriggerSpec {
    pub fn parse(spec: &str) -> Result<TriggerSpec, SpecError> {
        let err = |reason: &str| SpecError { spec: spec.to_string(), reason: reason.to_string() };
        let spec_trim = spec.trim();
        if spec_trim == "all_tables" {
            return Ok(TriggerSpec::AllTables);
        }
        let Some((kind, rest)) = spec_trim.split_once(':') else {
            return Err(err(
                "expected table:NAME, all_tables, every:DURATION, cron:EXPRESSION or request:PATH",
            ));
        };
        let rest = rest.trim();
        match kind {
            "table" => {
                if rest.is_empty() {
                    return Err(err("the table name is empty"));
                }
                Ok(TriggerSpec::Table(rest.to_string()))
            }
            "every" => {
                let d = parse_duration(rest).map_err(|e| err(&e))?;
                Ok(TriggerSpec::Every(d))
            }
            "cron" | "schedule" => Ok(TriggerSpec::Cron(normalize_cron(rest).map_err(|e| err(&e))?)),
            "request" | "path" => {
                let path = rest.trim_start_matches('/');
                if path.is_empty() {
                    return Err(err("the request path is empty"));
                }
                if !path.chars().all(|c| c.is_ascii_alphanumeric() || "-_./~".contains(c)) || path.contains("..") {
                    return Err(err("a request path may hold only letters, digits and - _ . / ~"));
                }
                Ok(TriggerSpec::Request(path.to_string()))
            }
            _ => Err(err(&format!(
                "unknown kind '{kind}': expected table, all_tables, every, cron, schedule, request or path"
            ))),
        }
    }

    /// The function the plugin must define for this trigger.
    pub fn entry_point(&self) -> &'static str {
        match self {
            TriggerSpec::Table(_) | TriggerSpec::AllTables => PROCESS_WRITES,
            TriggerSpec::Every(_) | TriggerSpec::Cron(_) => PROCESS_SCHEDULED_CALL,
            TriggerSpec::Request(_) => PROCESS_REQUEST,
        }
    }

    /// Fires on WAL flushes.
    pub fn is_wal(&self) -> bool {
        matches!(self, TriggerSpec::Table(_) | TriggerSpec::AllTables)
    }

    /// Fires on a schedule.
    pub fn is_schedule(&self) -> bool {
        matches!(self, TriggerSpec::Every(_) | TriggerSpec::Cron(_))
    }

    /// Whether a WAL trigger wants rows of `table`.
    pub fn wants_table(&self, table: &str) -> bool {
        match self {
            TriggerSpec::AllTables => true,
            TriggerSpec::Table(t) => t == table,
            _ => false,
        }
    }
}

/// The canonical text of a spec, which parses back to the same spec (cron in its 6/7-field
/// form, durations in the coarsest unit that holds them exactly).
impl std::fmt::Display for TriggerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TriggerSpec::Table(t) => write!(f, "table:{t}"),
            TriggerSpec::AllTables => f.write_str("all_tables"),
            TriggerSpec::Every(d) if d.subsec_nanos() == 0 => write!(f, "every:{}s", d.as_secs()),
            TriggerSpec::Every(d) if d.subsec_nanos() % 1_000_000 == 0 => write!(f, "every:{}ms", d.as_millis()),
            TriggerSpec::Every(d) if d.subsec_nanos() % 1_000 == 0 => write!(f, "every:{}us", d.as_micros()),
            TriggerSpec::Every(d) => write!(f, "every:{}ns", d.as_nanos()),
            TriggerSpec::Cron(c) => write!(f, "cron:{c}"),
            TriggerSpec::Request(p) => write!(f, "request:{p}"),
        }
    }
}

/// Accepts 6/7-field cron (seconds first) and 5-field crontab; returns the 6/7-field form the
/// `cron` crate reads. Crontab counts Sunday as 0 or 7, the `cron` crate as 1, so a numeric
/// day-of-week in a 5-field expression is shifted by one (names are left alone).
pub fn normalize_cron(expr: &str) -> Result<String, String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let six = match fields.len() {
        5 => {
            let dow = remap_crontab_dow(fields[4])?;
            format!("0 {} {} {} {} {}", fields[0], fields[1], fields[2], fields[3], dow)
        }
        6 | 7 => fields.join(" "),
        n => return Err(format!("a cron expression has 5, 6 or 7 fields, not {n}")),
    };
    six.parse::<cron::Schedule>().map_err(|e| format!("bad cron expression '{expr}': {e}"))?;
    Ok(six)
}

fn remap_crontab_dow(field: &str) -> Result<String, String> {
    field.split(',').map(remap_dow_item).collect::<Result<Vec<_>, _>>().map(|items| items.join(","))
}

/// One comma-separated item of a crontab day-of-week field, in the `cron` crate's numbering:
/// `*` and `*/S` as they are (the same days either way), names as they are, numbers shifted by
/// one. A range that reaches 7 (Sunday again) wraps, so it becomes a list: `5-7` is Friday,
/// Saturday and Sunday, `0-7` every day.
fn remap_dow_item(item: &str) -> Result<String, String> {
    if !item.starts_with(|c: char| c.is_ascii_digit()) {
        return Ok(item.to_string());
    }
    let day = |t: &str| -> Result<u32, String> {
        let n: u32 = t.parse().map_err(|_| format!("bad day of week '{t}'"))?;
        if n > 7 {
            return Err(format!("day of week {n} is out of range 0-7"));
        }
        Ok(n)
    };
    // crontab: 0 and 7 are Sunday; cron crate: 1 = Sunday ... 7 = Saturday.
    let shift = |n: u32| (n % 7) + 1;
    let (range, step) = match item.split_once('/') {
        Some((r, s)) => (r, Some(s.parse::<u32>().ok().filter(|&s| s > 0).ok_or_else(|| format!("bad step '{s}' in '{item}'"))?)),
        None => (item, None),
    };
    let (from, to) = match range.split_once('-') {
        Some((a, b)) => (day(a)?, day(b)?),
        // `N/S` runs from N to the end of the week.
        None if step.is_some() => (day(range)?, 7),
        None => return Ok(shift(day(range)?).to_string()),
    };
    if from > to {
        return Err(format!("day-of-week range '{range}' runs backwards"));
    }
    if to < 7 {
        let r = format!("{}-{}", shift(from), shift(to));
        return Ok(step.map_or(r.clone(), |s| format!("{r}/{s}")));
    }
    let days: std::collections::BTreeSet<u32> = (from..=to).step_by(step.unwrap_or(1) as usize).map(shift).collect();
    Ok(days.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(TriggerSpec::parse("table:cpu"), Ok(TriggerSpec::Table("cpu".into())));
        assert_eq!(TriggerSpec::parse("all_tables"), Ok(TriggerSpec::AllTables));
        assert_eq!(TriggerSpec::parse("every:10s"), Ok(TriggerSpec::Every(Duration::from_secs(10))));
        assert_eq!(TriggerSpec::parse("request:hello"), Ok(TriggerSpec::Request("hello".into())));
        assert_eq!(TriggerSpec::parse("path:/a/b"), Ok(TriggerSpec::Request("a/b".into())));
        assert_eq!(TriggerSpec::parse("cron:*/5 * * * * *"), Ok(TriggerSpec::Cron("*/5 * * * * *".into())));
        assert_eq!(TriggerSpec::parse("schedule:0 9 * * 1-5"), Ok(TriggerSpec::Cron("0 0 9 * * 2-6".into())));
    }

    #[test]
    fn refuses_specs_that_cannot_fire() {
        for bad in ["every:0s", "every:", "every:10x", "table:", "cron:* *", "cron:61 * * * * *", "request:", "nope:x", "x", "request:a b"] {
            assert!(TriggerSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn crontab_sunday_is_remapped() {
        assert_eq!(normalize_cron("0 0 * * 0").unwrap(), "0 0 0 * * 1");
        assert_eq!(normalize_cron("0 0 * * 7").unwrap(), "0 0 0 * * 1");
        assert_eq!(normalize_cron("0 0 * * 1,3").unwrap(), "0 0 0 * * 2,4");
        assert_eq!(normalize_cron("0 0 * * MON").unwrap(), "0 0 0 * * MON");
        assert_eq!(normalize_cron("0 0 * * */2").unwrap(), "0 0 0 * * */2");
    }

    #[test]
    fn crontab_day_ranges_that_reach_7_wrap_to_sunday() {
        // Friday, Saturday, Sunday; every day; Monday to Sunday.
        assert_eq!(normalize_cron("0 0 * * 5-7").unwrap(), "0 0 0 * * 1,6,7");
        assert_eq!(normalize_cron("0 0 * * 0-7").unwrap(), "0 0 0 * * 1,2,3,4,5,6,7");
        assert_eq!(normalize_cron("0 0 * * 1-7").unwrap(), "0 0 0 * * 1,2,3,4,5,6,7");
        assert_eq!(normalize_cron("0 0 * * 1-5").unwrap(), "0 0 0 * * 2-6");
        assert_eq!(normalize_cron("0 0 * * 1-5/2").unwrap(), "0 0 0 * * 2-6/2");
        assert_eq!(normalize_cron("0 0 * * 1-7/2").unwrap(), "0 0 0 * * 1,2,4,6");
        assert_eq!(normalize_cron("0 0 * * 0,6-7").unwrap(), "0 0 0 * * 1,1,7");
        assert_eq!(normalize_cron("0 0 * * MON-FRI").unwrap(), "0 0 0 * * MON-FRI");
        assert!(normalize_cron("0 0 * * 6-2").unwrap_err().contains("backwards"));
        assert!(normalize_cron("0 0 * * 8").unwrap_err().contains("out of range"));
        assert!(normalize_cron("0 0 * * 1-5/0").unwrap_err().contains("bad step"));
        // And the cron crate fires them on those days.
        use chrono::Datelike;
        let days = |expr: &str| -> std::collections::BTreeSet<String> {
            let schedule: cron::Schedule = normalize_cron(expr).unwrap().parse().unwrap();
            let from = chrono::DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z").unwrap().with_timezone(&chrono::Utc);
            schedule.after(&from).take(14).map(|t| t.weekday().to_string()).collect()
        };
        assert_eq!(days("0 0 * * 5-7"), ["Fri", "Sat", "Sun"].iter().map(|d| d.to_string()).collect());
        assert_eq!(days("0 0 * * 0-7").len(), 7);
        assert_eq!(days("0 0 * * 1-5"), ["Mon", "Tue", "Wed", "Thu", "Fri"].iter().map(|d| d.to_string()).collect());
    }
}
