//! The embedded CPython: started once per process, pinned to one interpreter, and prepared for
//! plugins.
//!
//! Embedded CPython finds its standard library from its program name; left alone it looks up
//! `python3` on PATH and may take another install's stdlib (DESIGN.md, "One Python, pinned"). So
//! it is started from a `PyConfig` naming the interpreter pyo3 was built against
//! (`PYO3_PYTHON`), with Python's own signal handlers off (the server owns SIGINT/SIGTERM).
//! Then the plugin environment is set up: `PLUGIN_DIR`, `INFLUXDB3_PLUGIN_DIR`, `VIRTUAL_ENV`,
//! the plugin venv's site-packages and the plugin dir on `sys.path`, the runtime
//! (`LineBuilder` and its errors) in `builtins`, and the guards that keep a plugin from ending or
//! forking the server's process (`plugins/runtime/weir_guard.py`).
//!
//! It never runs plugin code; [`crate::engine::plugin`] does.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::types::PyModule;

/// The interpreter pyo3 was built against, set in `.cargo/config.toml`.
pub const PYTHON_EXECUTABLE: &str = match option_env!("PYO3_PYTHON") {
    Some(p) => p,
    None => "/usr/bin/python3.11",
};

const RUNTIME_SOURCE: &str = include_str!("../../plugins/runtime/weir_runtime.py");
const GUARD_SOURCE: &str = include_str!("../../plugins/runtime/weir_guard.py");

/// Names the runtime puts in `builtins`, so plugins use them without an import.
const BUILTIN_NAMES: &[&str] =
    &["LineBuilder", "InfluxDBError", "InvalidMeasurementError", "InvalidKeyError", "InvalidLineError"];

static STARTED: OnceLock<Result<(), String>> = OnceLock::new();

/// Starts CPython once for the whole process. Later calls return the first call's outcome.
pub fn start() -> Result<(), String> {
    STARTED.get_or_init(|| unsafe { init_interpreter() }).clone()
}

unsafe fn init_interpreter() -> Result<(), String> {
    use pyo3::ffi;
    // SAFETY: runs once (OnceLock); the config is initialised by CPython before use and cleared
    // after; the GIL taken by initialisation is released at the end so any thread may attach.
    unsafe {
        if ffi::Py_IsInitialized() != 0 {
            return Ok(());
        }
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::zeroed();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        // The runtime is set up now and no object exists yet: the moment arenas may be swapped.
        super::arenas::install();
        // Likewise the raw allocator, wrapped to count a plugin call's memory.
        super::memory::install();
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        let exe = CString::new(PYTHON_EXECUTABLE).map_err(|e| e.to_string())?;
        let status = ffi::PyConfig_SetBytesString(&mut config, &mut config.program_name, exe.as_ptr());
        if ffi::PyStatus_Exception(status) != 0 {
            ffi::PyConfig_Clear(&mut config);
            return Err(format!("could not configure Python ({PYTHON_EXECUTABLE})"));
        }
        let status = ffi::Py_InitializeFromConfig(&config);
        ffi::PyConfig_Clear(&mut config);
        if ffi::PyStatus_Exception(status) != 0 {
            let msg = if status.err_msg.is_null() {
                "unknown error".to_string()
            } else {
                std::ffi::CStr::from_ptr(status.err_msg).to_string_lossy().into_owned()
            };
            return Err(format!("could not start Python ({PYTHON_EXECUTABLE}): {msg}"));
        }
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

/// Where the plugin virtualenv lives.
pub fn venv_dir(plugin_dir: &Path) -> PathBuf {
    plugin_dir.join(".venv")
}

/// Sets up the plugin environment. Safe to call again (after a package install, say).
/// `system_site_packages` keeps the system's site-packages importable, after the venv's.
pub fn prepare(py: Python<'_>, plugin_dir: &Path, system_site_packages: bool) -> PyResult<()> {
    let os = py.import("os")?;
    let environ = os.getattr("environ")?;
    let dir = plugin_dir.to_string_lossy().into_owned();
    environ.set_item("PLUGIN_DIR", &dir)?;
    environ.set_item("INFLUXDB3_PLUGIN_DIR", &dir)?;
    let venv = venv_dir(plugin_dir);
    environ.set_item("VIRTUAL_ENV", venv.to_string_lossy().as_ref())?;

    order_sys_path(py, plugin_dir, &venv, system_site_packages)?;

    if py.import("weir_runtime").is_err() {
        let module = load_source(py, RUNTIME_SOURCE, c"weir_runtime.py", c"weir_runtime")?;
        let builtins = py.import("builtins")?;
        for name in BUILTIN_NAMES {
            builtins.setattr(*name, module.getattr(*name)?)?;
        }
    }
    if py.import("weir_guard").is_err() {
        load_source(py, GUARD_SOURCE, c"weir_guard.py", c"weir_guard")?.call_method0("install")?;
    }
    Ok(())
}

/// Runs one of the runtime's own modules from its source and registers it in `sys.modules`.
fn load_source<'py>(py: Python<'py>, source: &str, file: &std::ffi::CStr, name: &std::ffi::CStr) -> PyResult<Bound<'py, PyModule>> {
    let code = CString::new(source).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    let module = PyModule::from_code(py, &code, file, name)?;
    py.import("sys")?.getattr("modules")?.set_item(name.to_string_lossy().as_ref(), &module)?;
    Ok(module)
}

/// Sets one variable of the plugins' `os.environ` (never the process's own environment, which
/// other threads read).
pub fn set_env(py: Python<'_>, name: &str, value: &str) -> PyResult<()> {
    py.import("os")?.getattr("environ")?.set_item(name, value)
}

/// Orders `sys.path` for plugins: the standard library, then the venv's site-packages (a
/// package the user installed wins over any other copy), then the plugin dir (after the
/// standard library, so a plugin named like a stdlib module, `types.py`, cannot shadow it),
/// then, only if asked, the system's site-packages (Debian's may hold older copies of what the
/// venv has; InfluxDB's bundled Python has none).
fn order_sys_path(py: Python<'_>, plugin_dir: &Path, venv: &Path, system_site_packages: bool) -> PyResult<()> {
    let sys = py.import("sys")?;
    let site = py.import("site")?;
    let mut system: Vec<String> = site.call_method0("getsitepackages")?.extract()?;
    if let Ok(user) = site.call_method0("getusersitepackages")?.extract::<String>() {
        system.push(user);
    }
    let path = sys.getattr("path")?;
    let before: Vec<String> = path.extract()?;
    // `addsitedir` appends the venv's site-packages and what its `.pth` files name.
    add_venv_site_packages(py, venv)?;
    let after: Vec<String> = path.extract()?;
    let plugin_dir = plugin_dir.to_string_lossy().into_owned();
    let venv_prefix = venv.to_string_lossy().into_owned();
    let is_venv = |p: &str| p.starts_with(&venv_prefix) || !before.iter().any(|b| b == p);
    let mut ordered: Vec<String> = Vec::with_capacity(after.len() + 1);
    let push = |p: &String, ordered: &mut Vec<String>| {
        if !ordered.contains(p) {
            ordered.push(p.clone());
        }
    };
    for p in after.iter().filter(|p| !system.contains(p) && **p != plugin_dir && !is_venv(p)) {
        push(p, &mut ordered);
    }
    for p in after.iter().filter(|p| is_venv(p) && !system.contains(p)) {
        push(p, &mut ordered);
    }
    push(&plugin_dir, &mut ordered);
    if system_site_packages {
        for p in after.iter().filter(|p| system.contains(p)) {
            push(p, &mut ordered);
        }
    }
    path.call_method0("clear")?;
    for p in ordered {
        path.call_method1("append", (p,))?;
    }
    Ok(())
}

/// Adds the venv's site-packages (if the venv exists) so plugins import what was installed.
fn add_venv_site_packages(py: Python<'_>, venv: &Path) -> PyResult<()> {
    let lib = venv.join("lib");
    let Ok(entries) = std::fs::read_dir(&lib) else {
        return Ok(());
    };
    let site = py.import("site")?;
    for e in entries.flatten() {
        let sp = e.path().join("site-packages");
        if sp.is_dir() {
            site.call_method1("addsitedir", (sp.to_string_lossy().as_ref(),))?;
        }
    }
    Ok(())
}

/// Renders a Python exception with its traceback, as Python would print it.
pub fn format_exception(py: Python<'_>, err: &PyErr) -> String {
    let rendered = (|| -> PyResult<String> {
        let tb = py.import("traceback")?;
        // On 3.11 the traceback is kept beside the exception, not on it: pass all three.
        let lines = tb.call_method1("format_exception", (err.get_type(py), err.value(py), err.traceback(py)))?;
        let joined: String = lines.try_iter()?.map(|l| l.and_then(|l| l.extract::<String>())).collect::<PyResult<_>>()?;
        Ok(joined.trim_end().to_string())
    })();
    rendered.unwrap_or_else(|_| err.to_string())
}
