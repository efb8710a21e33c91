//! The plugin virtualenv: made with the embedded interpreter under `PLUGIN_DIR/.venv`, filled
//! by pip, and put on the plugins' `sys.path`.
//!
//! pip runs as a child process with a time limit; when it fails, the caller gets its exit status
//! and the end of its output (InfluxDB 3 reports success whatever pip did). Package names that
//! look like options are refused, so a request cannot pass flags (`--index-url ...`) to pip. It
//! never runs on an executor or shard thread: callers run it on a blocking thread.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::py_api::python::{venv_dir, PYTHON_EXECUTABLE};

/// Longest a pip run may take.
pub const PIP_TIMEOUT: Duration = Duration::from_secs(600);
/// Bytes of pip's output kept for an error message.
const OUTPUT_TAIL_BYTES: usize = 4000;

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

/// What to install.
pub enum Install {
    Packages(Vec<String>),
    Requirements(PathBuf),
}

pub fn check_package_names(names: &[String]) -> Result<(), PackageError> {
    if names.is_empty() {
        return Err(PackageError::Invalid("'packages' must name at least one package".into()));
    }
    for n in names {
        let ok = !n.trim().is_empty()
            && !n.starts_with('-')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.[],<>=!~ ;:'\"@/+".contains(c));
        if !ok {
            return Err(PackageError::Invalid(format!("'{n}' is not a package name or requirement")));
        }
    }
    Ok(())
}

/// Makes the venv if it is missing, then pip-installs into it. Blocking.
pub fn install(plugin_dir: &Path, what: Install) -> Result<String, PackageError> {
    let venv = venv_dir(plugin_dir);
    let python = venv.join("bin").join("python");
    if !python.exists() {
        run(Command::new(PYTHON_EXECUTABLE).arg("-m").arg("venv").arg(&venv), "creating the plugin virtualenv")?;
    }
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input"]);
    match what {
        Install::Packages(p) => {
            check_package_names(&p)?;
            cmd.args(p);
        }
        Install::Requirements(r) => {
            let r = if r.is_absolute() { r } else { plugin_dir.join(r) };
            if !r.is_file() {
                return Err(PackageError::Invalid(format!("requirements file '{}' not found", r.display())));
            }
            cmd.arg("-r").arg(r);
        }
    }
    run(&mut cmd, "pip install")
}

fn run(cmd: &mut Command, what: &str) -> Result<String, PackageError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONPATH")
        .spawn()
        .map_err(|e| PackageError::Failed(format!("{what}: could not start: {e}")))?;
    // Drain both pipes on threads, so a chatty pip never blocks on a full pipe.
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() > PIP_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(PackageError::Failed(format!("{what} took longer than {} s and was stopped", PIP_TIMEOUT.as_secs())));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(PackageError::Failed(format!("{what}: {e}"))),
        }
    };
    let text = format!(
        "{}{}",
        out.and_then(|h| h.join().ok()).unwrap_or_default(),
        err.and_then(|h| h.join().ok()).unwrap_or_default()
    );
    if status.success() {
        return Ok(text);
    }
    let start = text.len().saturating_sub(OUTPUT_TAIL_BYTES);
    let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
    Err(PackageError::Failed(format!("{what} failed ({status}):\n{}", text[start..].trim())))
}

fn drain(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_like_names_are_refused() {
        assert!(check_package_names(&["--index-url".into()]).is_err());
        assert!(check_package_names(&["a\nb".into()]).is_err());
        assert!(check_package_names(&[]).is_err());
        check_package_names(&["requests>=2,<3".into(), "pkg[extra]==1.0".into()]).unwrap();
    }
}
