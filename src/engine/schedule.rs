//! When schedule triggers fire: `every:DUR` aligned to the epoch, and `cron:` expressions.
//!
//! One scheduler thread keeps the next due instant (UTC nanoseconds) of every running schedule
//! trigger and sleeps until the earliest. A tick whose synchronous trigger is still busy with
//! the previous call is skipped and logged, never queued behind it; ticks missed while the
//! server was behind are skipped (logged once) rather than fired in a burst. `call_time` is the
//! scheduled instant, not the moment the call began.
//!
//! It decides *when*; the executors decide nothing about time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::plugin_logs::LogLevel;
use super::spec::TriggerSpec;
use super::{Event, Inner, Runner};

/// The first fire time strictly after `after_ns` (nanoseconds since the epoch, UTC).
pub fn next_fire_ns(spec: &TriggerSpec, after_ns: i64) -> Option<i64> {
    match spec {
        TriggerSpec::Every(d) => {
            let period = i64::try_from(d.as_nanos()).ok()?.max(1);
            after_ns.div_euclid(period).checked_add(1)?.checked_mul(period)
        }
        TriggerSpec::Cron(expr) => {
            let schedule: cron::Schedule = expr.parse().ok()?;
            let after = DateTime::<Utc>::from_timestamp_nanos(after_ns);
            schedule.after(&after).next()?.timestamp_nanos_opt()
        }
        _ => None,
    }
}

/// Runs until the engine goes away. `changes` wakes it when the set of triggers changed.
pub(super) fn scheduler_loop(inner: Arc<Inner>, changes: Receiver<()>) {
    let mut due: HashMap<(String, String), (Arc<Runner>, i64)> = HashMap::new();
    loop {
        let running: Vec<Arc<Runner>> =
            inner.runners.read().values().filter(|r| r.spec.is_schedule()).cloned().collect();
        due.retain(|_, (r, _)| running.iter().any(|c| Arc::ptr_eq(c, r)));
        let now = crate::time::now_ns();
        for r in running {
            let key = (r.db.clone(), r.def.name.clone());
            if let std::collections::hash_map::Entry::Vacant(slot) = due.entry(key) {
                if let Some(next) = next_fire_ns(&r.spec, now) {
                    slot.insert((r, next));
                }
            }
        }
        let now = crate::time::now_ns();
        let mut finished = Vec::new();
        for (key, (r, at)) in due.iter_mut() {
            if *at > now {
                continue;
            }
            inner.fire_scheduled(r, *at);
            match next_fire_ns(&r.spec, *at) {
                Some(next) if next > now => *at = next,
                Some(_) => {
                    // Behind (a stalled machine, a clock jump): skip to the next future tick.
                    inner.services.logs.push(&r.db, &r.def.name, LogLevel::Warn, "schedule fell behind; missed ticks were skipped".into());
                    match next_fire_ns(&r.spec, now) {
                        Some(n) => *at = n,
                        None => finished.push(key.clone()),
                    }
                }
                None => finished.push(key.clone()),
            }
        }
        for k in finished {
            due.remove(&k);
        }
        let earliest = due.values().map(|(_, at)| *at).min();
        let wait = match earliest {
            Some(at) => Duration::from_nanos((at - crate::time::now_ns()).max(0) as u64),
            None => Duration::from_secs(3600),
        };
        match changes.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl Inner {
    /// Queues one tick, or skips it (logged) if the synchronous trigger is still busy.
    fn fire_scheduled(&self, r: &Arc<Runner>, at_ns: i64) {
        if !r.def.run_async && r.busy() {
            let when = DateTime::<Utc>::from_timestamp_nanos(at_ns).to_rfc3339();
            self.services.logs.push(
                &r.db,
                &r.def.name,
                LogLevel::Warn,
                format!("tick at {when} skipped: the previous call is still running"),
            );
            return;
        }
        self.enqueue(r, Event::Schedule { call_time_ns: at_ns });
    }
}

/// `call_time` for a plugin: the scheduled instant as a naive `datetime` holding UTC, with
/// microsecond precision (what `datetime` keeps).
pub fn call_time(py: pyo3::Python<'_>, ns: i64) -> pyo3::PyResult<pyo3::Bound<'_, pyo3::PyAny>> {
    use pyo3::prelude::*;
    let dt = py.import("datetime")?;
    // weir_runtime.CallTime: naive UTC that timestamp() and astimezone() read as UTC.
    let epoch = py.import("weir_runtime")?.getattr("CallTime")?.call1((1970, 1, 1))?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("microseconds", ns.div_euclid(1000))?;
    let delta = dt.getattr("timedelta")?.call((), Some(&kwargs))?;
    epoch.call_method1("__add__", (delta,))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_is_aligned_to_the_epoch() {
        let ten = TriggerSpec::Every(Duration::from_secs(10));
        assert_eq!(next_fire_ns(&ten, 0), Some(10_000_000_000));
        assert_eq!(next_fire_ns(&ten, 12_345_000_000), Some(20_000_000_000));
        assert_eq!(next_fire_ns(&ten, 20_000_000_000), Some(30_000_000_000), "strictly after");
    }

    #[test]
    fn cron_with_seconds_and_crontab_forms() {
        let every_5s = TriggerSpec::parse("cron:*/5 * * * * *").unwrap();
        assert_eq!(next_fire_ns(&every_5s, 1_000_000_000), Some(5_000_000_000));
        // 5-field crontab: minute 30 of every hour.
        let half_past = TriggerSpec::parse("cron:30 * * * *").unwrap();
        assert_eq!(next_fire_ns(&half_past, 0), Some(30 * 60 * 1_000_000_000));
        // crontab Sunday (0): 1970-01-04 was a Sunday.
        let sunday = TriggerSpec::parse("cron:0 0 * * 0").unwrap();
        assert_eq!(next_fire_ns(&sunday, 0), Some(3 * 86_400 * 1_000_000_000));
    }
}

