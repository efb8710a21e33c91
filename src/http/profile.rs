//! `/debug/pprof/profile?seconds=N` (pprof protobuf, for `go tool pprof` and friends) and
//! `/debug/pprof/flamegraph?seconds=N` (SVG): CPU samples of every thread of the process for N
//! seconds, taken with the `pprof` crate (SIGPROF at 99 Hz).
//!
//! One profile at a time: a second request while one runs gets 409. The sampling runs on a
//! blocking thread, never on an executor, and it never reads or changes any data.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;

use super::error::{ApiError, Resp};

/// Longest profile one request may ask for.
pub const MAX_SECONDS: u64 = 300;
const DEFAULT_SECONDS: u64 = 10;
const FREQUENCY_HZ: i32 = 99;

#[derive(Clone, Copy)]
pub enum Format {
    Pprof,
    Flamegraph,
}

pub async fn profile(qs: &std::collections::HashMap<String, String>, format: Format) -> Result<Resp, ApiError> {
    let seconds = match qs.get("seconds").map(|s| s.as_str()) {
        None | Some("") => DEFAULT_SECONDS,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if (1..=MAX_SECONDS).contains(&n) => n,
            _ => return Err(ApiError::BadRequest(format!("seconds must be a whole number from 1 to {MAX_SECONDS}, not '{s}'"))),
        },
    };
    let sampled = tokio::task::spawn_blocking(move || sample(seconds, format))
        .await
        .map_err(|e| ApiError::Internal(format!("the profiler thread failed: {e}")))??;
    let content_type = match format {
        Format::Pprof => "application/octet-stream",
        Format::Flamegraph => "image/svg+xml",
    };
    hyper::Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", content_type)
        .body(Full::new(Bytes::from(sampled)))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

// Runs on the query runtime's blocking pool (never a shard): it sleeps while samples are taken.
#[allow(clippy::disallowed_methods)]
fn sample(seconds: u64, format: Format) -> Result<Vec<u8>, ApiError> {
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY_HZ)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| match e {
            pprof::Error::Running => ApiError::Conflict("a profile is already being taken; try again when it ends".into()),
            other => ApiError::Internal(format!("could not start the profiler: {other}")),
        })?;
    std::thread::sleep(Duration::from_secs(seconds));
    let report = guard.report().build().map_err(|e| ApiError::Internal(format!("could not build the profile: {e}")))?;
    let mut out = Vec::new();
    match format {
        Format::Flamegraph => {
            report.flamegraph(&mut out).map_err(|e| ApiError::Internal(format!("flamegraph: {e}")))?;
            // With no samples (an idle server uses no CPU time to sample) the crate writes
            // nothing at all; answer a valid SVG that says so.
            if out.is_empty() {
                out = no_samples_svg(seconds).into_bytes();
            }
        }
        Format::Pprof => {
            use pprof::protos::Message;
            let profile = report.pprof().map_err(|e| ApiError::Internal(format!("pprof: {e}")))?;
            profile.encode(&mut out).map_err(|e| ApiError::Internal(format!("pprof encoding: {e}")))?;
        }
    }
    Ok(out)
}

/// The flamegraph of a profile that caught no samples.
fn no_samples_svg(seconds: u64) -> String {
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
         <svg version=\"1.1\" width=\"1200\" height=\"60\" xmlns=\"http://www.w3.org/2000/svg\">\
         <text x=\"600\" y=\"34\" text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"14\">\
         No samples: the server used no CPU time in the {seconds} s profiled</text></svg>\n"
    )
}
