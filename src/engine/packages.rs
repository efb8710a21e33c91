//! The plugin virtualenv: made with the embedded interpreter under `PLUGIN_DIR/.venv`, filled
//! by pip, and put on the plugins' `sys.path`.
//!
//! Package management is a door into the server, so it takes only what it must: package names
//! with optional extras and version specifiers (no URLs, paths, markers or pip options), and
//! requirements files that lie inside the plugin dir and hold nothing else; their lines are
//! checked here and handed to pip as arguments, so pip never reads the file itself. It can be
//! turned off (`--disable-package-management`). pip runs as a child process with a time limit;
//! when it fails, the caller gets its exit status and the end of its output (InfluxDB 3 reports
//! success whatever pip did). It never runs on an executor or shard thread: callers run it on a
//! blocking thread.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::py_api::python::{venv_dir, PYTHON_EXECUTABLE};

/// Bytes of pip's output kept for an error message.
const OUTPUT_TAIL_BYTES: usize = 4000;
/// Largest requirements file read.
const REQUIREMENTS_MAX_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{0}")]
    Invalid(String),
    #[error("package management is turned off on this server (--disable-package-management)")]
    Disabled,
    #[error("{0}")]
    Failed(String),
}

/// What the server allows.
#[derive(Debug, Clone, Copy)]
pub struct PackagePolicy {
    pub enabled: bool,
    /// Longest a pip run may take.
    pub timeout: Duration,
    /// Whether the system's site-packages stay importable by plugins, after the venv's
    /// (`--plugin-system-packages`).
    pub system_site_packages: bool,
}

/// What to install.
pub enum Install {
    Packages(Vec<String>),
    Requirements(PathBuf),
}

/// A name: letters and digits, with `.`, `_` and `-` inside (PEP 508).
fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
}

/// One version specifier: an operator and a version (`>=2.1`, `==1.*`, `~=3.0`).
fn is_specifier(s: &str) -> bool {
    let s = s.trim();
    let op_len = ["===", "~=", "==", "!=", "<=", ">=", "<", ">"].iter().find(|op| s.starts_with(**op)).map(|op| op.len());
    let Some(n) = op_len else { return false };
    let v = s[n..].trim();
    !v.is_empty() && v.bytes().all(|c| c.is_ascii_alphanumeric() || b".*+!_-".contains(&c))
}

/// A requirement pip may be given: `name`, `name[extra,...]`, each optionally followed by
/// comma-separated version specifiers. Nothing that names a URL, a path, or an option.
pub fn check_requirement(spec: &str) -> Result<(), String> {
    let s = spec.trim();
    let bad = || {
        Err(format!(
            "'{}' is not a package name with optional extras and version specifiers (e.g. requests>=2.31 or pkg[extra]==1.0)",
            s.escape_debug()
        ))
    };
    let name_end = s.find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c))).unwrap_or(s.len());
    if !is_name(&s[..name_end]) {
        return bad();
    }
    let mut rest = s[name_end..].trim_start();
    if let Some(after) = rest.strip_prefix('[') {
        let Some(close) = after.find(']') else { return bad() };
        if !after[..close].split(',').all(|e| is_name(e.trim())) {
            return bad();
        }
        rest = after[close + 1..].trim_start();
    }
    if !rest.is_empty() && !rest.split(',').all(is_specifier) {
        return bad();
    }
    Ok(())
}

pub fn check_package_names(names: &[String]) -> Result<(), PackageError> {
    if names.is_empty() {
        return Err(PackageError::Invalid("'packages' must name at least one package".into()));
    }
    for n in names {
        check_requirement(n).map_err(PackageError::Invalid)?;
    }
    Ok(())
}

/// The requirements of a file inside `plugin_dir` (symlinks resolved), each line checked.
/// Errors name the line, never echo a file the server should not show.
pub fn read_requirements(plugin_dir: &Path, location: &Path) -> Result<Vec<String>, PackageError> {
    let shown = location.display().to_string();
    let joined = if location.is_absolute() { location.to_path_buf() } else { plugin_dir.join(location) };
    let outside = || PackageError::Invalid(format!("requirements file '{shown}' must lie inside the plugin directory"));
    let root = std::fs::canonicalize(plugin_dir).map_err(|e| PackageError::Failed(format!("the plugin directory: {e}")))?;
    let path = match std::fs::canonicalize(&joined) {
        Ok(p) => p,
        // Whether a file outside exists is not for the caller to learn.
        Err(_) if !joined.starts_with(plugin_dir) && !joined.starts_with(&root) => return Err(outside()),
        Err(_) => return Err(PackageError::Invalid(format!("requirements file '{shown}' not found in the plugin directory"))),
    };
    if !path.starts_with(&root) {
        return Err(outside());
    }
    if !path.is_file() {
        return Err(PackageError::Invalid(format!("requirements file '{shown}' is not a file")));
    }
    let mut text = String::new();
    let file = std::fs::File::open(&path).map_err(|e| PackageError::Invalid(format!("requirements file '{shown}': {e}")))?;
    std::io::Read::read_to_string(&mut std::io::Read::take(file, REQUIREMENTS_MAX_BYTES + 1), &mut text)
        .map_err(|_| PackageError::Invalid(format!("requirements file '{shown}' is not UTF-8 text")))?;
    if text.len() as u64 > REQUIREMENTS_MAX_BYTES {
        return Err(PackageError::Invalid(format!("requirements file '{shown}' is larger than {REQUIREMENTS_MAX_BYTES} bytes")));
    }
    let mut specs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split(" #").next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('-') {
            return Err(PackageError::Invalid(format!("requirements file '{shown}', line {}: pip options are not allowed", i + 1)));
        }
        check_requirement(line).map_err(|e| PackageError::Invalid(format!("requirements file '{shown}', line {}: {e}", i + 1)))?;
        specs.push(line.to_string());
    }
    if specs.is_empty() {
        return Err(PackageError::Invalid(format!("requirements file '{shown}' names no package")));
    }
    Ok(specs)
}

/// Makes the venv if it is missing, then pip-installs into it. Blocking.
pub fn install(plugin_dir: &Path, what: Install, policy: PackagePolicy) -> Result<String, PackageError> {
    if !policy.enabled {
        return Err(PackageError::Disabled);
    }
    // Checked before anything runs, the venv included.
    let specs = match what {
        Install::Packages(p) => {
            check_package_names(&p)?;
            p
        }
        Install::Requirements(r) => read_requirements(plugin_dir, &r)?,
    };
    let venv = venv_dir(plugin_dir);
    let python = venv.join("bin").join("python");
    if !python.exists() {
        run(Command::new(PYTHON_EXECUTABLE).arg("-m").arg("venv").arg(&venv), "creating the plugin virtualenv", policy.timeout)?;
    }
    let mut cmd = Command::new(&python);
    // `--` ends pip's options: nothing after it is read as one.
    cmd.args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--"]).args(specs);
    run(&mut cmd, "pip install", policy.timeout)
}

fn run(cmd: &mut Command, what: &str, timeout: Duration) -> Result<String, PackageError> {
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
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(PackageError::Failed(format!(
                    "{what} took longer than {} s and was stopped (--package-install-timeout)",
                    timeout.as_secs()
                )));
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

/// Reads a pipe of pip's to its end, logging each line as it comes (a first install of a large
/// package takes minutes: the log shows it progressing), and answers all of it.
fn drain(r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut lines = std::io::BufReader::new(r);
        let mut line = Vec::new();
        while matches!(std::io::BufRead::read_until(&mut lines, b'\n', &mut line), Ok(n) if n > 0) {
            let l = String::from_utf8_lossy(&line);
            if !l.trim().is_empty() {
                tracing::info!(target: "weir::packages", "pip: {}", l.trim_end());
            }
            text.push_str(&l);
            line.clear();
        }
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_extras_and_version_specifiers_are_requirements() {
        for ok in ["requests", "requests>=2,<3", "pkg[extra]==1.0", "a.b_c-d", "x ~= 1.4.2", "numpy==1.*", "pkg[a, b]"] {
            assert!(check_requirement(ok).is_ok(), "{ok}");
        }
        for bad in [
            "--index-url",
            "-e .",
            "x @ http://host/x.whl",
            "http://host/x.whl",
            "./local",
            "/abs/path",
            "x; os_name=='posix'",
            "a\nb",
            "x==1 --hash",
            "",
            "x[]",
            "x>=",
        ] {
            assert!(check_requirement(bad).is_err(), "{bad}");
        }
        assert!(check_package_names(&[]).is_err());
    }

    #[test]
    fn a_requirements_file_must_lie_in_the_plugin_dir_and_hold_only_requirements() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::write(plugins.join("ok.txt"), "# pinned\nrequests>=2.31  # http\n\npkg[x]==1\n").unwrap();
        assert_eq!(read_requirements(&plugins, Path::new("ok.txt")).unwrap(), vec!["requests>=2.31", "pkg[x]==1"]);
        std::fs::write(plugins.join("opt.txt"), "requests\n--index-url http://evil/\n").unwrap();
        let e = read_requirements(&plugins, Path::new("opt.txt")).unwrap_err().to_string();
        assert!(e.contains("line 2") && !e.contains("evil"), "{e}");
        let e = read_requirements(&plugins, Path::new("/etc/passwd")).unwrap_err().to_string();
        assert!(e.contains("inside the plugin directory") && !e.contains("root"), "{e}");
        assert!(read_requirements(&plugins, Path::new("../plugins/../x.txt")).is_err());
        std::fs::write(dir.path().join("outside.txt"), "requests\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.txt"), plugins.join("link.txt")).unwrap();
        assert!(read_requirements(&plugins, Path::new("link.txt")).unwrap_err().to_string().contains("inside"));
    }

    #[test]
    fn nothing_runs_when_package_management_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let policy = PackagePolicy { enabled: false, timeout: Duration::from_secs(1), system_site_packages: false };
        assert!(matches!(install(dir.path(), Install::Packages(vec!["requests".into()]), policy), Err(PackageError::Disabled)));
        assert!(!venv_dir(dir.path()).exists());
    }
}
