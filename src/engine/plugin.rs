//! Plugin files: where they are, loading them as modules, and reloading them when they change.
//!
//! A plugin is a `.py` file under the plugin dir, or a directory with `__init__.py` imported as a
//! package. Each is loaded once into its own module (registered in `sys.modules`, with
//! `__file__` set, so dataclasses, pickling and relative imports behave) and loaded again when
//! its files change on disk: the next call uses the new code, the trigger is not recreated. A
//! file that fails to load keeps no stale module: the call fails with the Python error.
//!
//! `gh:PATH` names a file of the plugin repository (`--plugin-repo`): [`fetch_gh`] downloads it
//! once into `PLUGIN_DIR/.gh/PATH`, and from then on it resolves like a local file.
//!
//! It resolves only paths inside the plugin dir, and it only loads: calling is the executor's.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};

use crate::py_api::python::format_exception;

#[derive(Debug, thiserror::Error, Clone)]
pub enum PluginError {
    #[error("plugin file '{0}' not found in the plugin directory")]
    NotFound(String),
    #[error("invalid plugin filename '{name}': {reason}")]
    BadName { name: String, reason: String },
    #[error("plugin '{name}' failed to load:\n{detail}")]
    Load { name: String, detail: String, missing_import: bool },
    #[error("could not fetch plugin '{name}' from {url}: {reason}")]
    Fetch { name: String, url: String, reason: String },
    #[error("plugin '{name}' defines no function '{function}', which a '{spec}' trigger calls")]
    MissingFunction { name: String, function: String, spec: String },
}

/// Where `gh:` plugins are cached, under the plugin dir.
pub const GH_CACHE_DIR: &str = ".gh";
/// Largest plugin file fetched from the repository.
const GH_MAX_BYTES: u64 = 4 << 20;

/// Checks a `gh:` path: `/`-separated segments of letters, digits, `.`, `_` and `-`, none of
/// them `.` or `..`, ending in `.py`. Nothing that a URL or a file system could read as
/// leaving the repository (no `%`, `\`, `?`, `#`, no empty segment).
fn check_gh_path(name: &str, rel: &str) -> Result<(), PluginError> {
    let ok = rel.ends_with(".py")
        && rel.split('/').all(|seg| {
            !seg.is_empty() && seg != "." && seg != ".." && seg.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
        });
    if ok {
        return Ok(());
    }
    Err(PluginError::BadName {
        name: name.into(),
        reason: "gh: takes a relative path to a .py file: segments of letters, digits, '.', '_' and '-', without '..' or escapes".into(),
    })
}

/// Downloads `gh:PATH` from `repo` into the cache unless it is there already. Blocking.
pub fn fetch_gh(plugin_dir: &Path, repo: &str, name: &str) -> Result<(), PluginError> {
    let Some(rel) = name.strip_prefix("gh:") else { return Ok(()) };
    check_gh_path(name, rel)?;
    let target = plugin_dir.join(GH_CACHE_DIR).join(rel);
    if target.is_file() {
        return Ok(());
    }
    let url = format!("{}/{}", repo.trim_end_matches('/'), rel);
    let fail = |reason: String| PluginError::Fetch { name: name.into(), url: url.clone(), reason };
    let resp = ureq::get(&url).timeout(std::time::Duration::from_secs(30)).call().map_err(|e| fail(e.to_string()))?;
    let mut source = String::new();
    // One byte past the limit tells a file that is too large from one that fits exactly.
    std::io::Read::read_to_string(&mut std::io::Read::take(resp.into_reader(), GH_MAX_BYTES + 1), &mut source).map_err(|e| fail(e.to_string()))?;
    if source.len() as u64 > GH_MAX_BYTES {
        return Err(fail(format!("the file is larger than the limit of {GH_MAX_BYTES} bytes")));
    }
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    // Written whole, then renamed: a half-downloaded file is never loaded.
    let tmp = target.with_extension("py.part");
    std::fs::write(&tmp, source).and_then(|_| std::fs::rename(&tmp, &target)).map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// A plugin's version on disk: changes when any of its files changes.
type Stamp = Vec<(PathBuf, SystemTime, u64)>;

struct Loaded {
    /// The name triggers use for it (`x.py`, `gh:x.py`, `pkg`).
    name: String,
    module: Py<PyModule>,
    stamp: Stamp,
}

pub struct PluginLoader {
    dir: PathBuf,
    loaded: Mutex<HashMap<PathBuf, Loaded>>,
}

impl PluginLoader {
    pub fn new(dir: PathBuf) -> PluginLoader {
        PluginLoader { dir, loaded: Mutex::new(HashMap::new()) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file or package directory a plugin name refers to.
    pub fn resolve(&self, name: &str) -> Result<PathBuf, PluginError> {
        let bad = |reason: &str| PluginError::BadName { name: name.to_string(), reason: reason.to_string() };
        let (rel, base) = match name.strip_prefix("gh:") {
            Some(p) => {
                check_gh_path(name, p)?;
                (Path::new(p), self.dir.join(GH_CACHE_DIR))
            }
            None => (Path::new(name), self.dir.clone()),
        };
        if name.is_empty() || rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(bad("it must be a relative path inside the plugin directory, without '..'"));
        }
        let path = base.join(rel);
        // A symlink may point anywhere: what it resolves to must still be inside.
        if let (Ok(real), Ok(root)) = (std::fs::canonicalize(&path), std::fs::canonicalize(&self.dir)) {
            if !real.starts_with(&root) {
                return Err(bad("it resolves (through a symlink) to a file outside the plugin directory"));
            }
        }
        if path.is_dir() {
            if !path.join("__init__.py").is_file() {
                return Err(bad("a plugin directory must hold an __init__.py"));
            }
            return Ok(path);
        }
        if path.extension().and_then(|e| e.to_str()) != Some("py") {
            return Err(bad("a plugin is a .py file or a directory with __init__.py"));
        }
        if !path.is_file() {
            return Err(PluginError::NotFound(name.to_string()));
        }
        Ok(path)
    }

    /// The plugin's module, loaded or reloaded as needed.
    pub fn load<'py>(&self, py: Python<'py>, name: &str) -> Result<Bound<'py, PyModule>, PluginError> {
        if let Some(module) = self.unchanged_file(py, name) {
            return Ok(module);
        }
        let path = self.resolve(name)?;
        let stamp = stamp(&path);
        if let Some(l) = self.loaded.lock().get(&path) {
            if l.stamp == stamp {
                return Ok(l.module.bind(py).clone());
            }
        }
        // The old module is dropped after the lock is released, never under it: its objects'
        // `__del__` may run Python that lets another executor take the GIL and wait on this lock.
        let stale = self.loaded.lock().remove(&path);
        drop(stale);
        let module = load_module(py, &path).map_err(|e| PluginError::Load {
            name: name.to_string(),
            detail: format_exception(py, &e),
            missing_import: e.is_instance_of::<pyo3::exceptions::PyImportError>(py),
        })?;
        let replaced = self.loaded.lock().insert(path, Loaded { name: name.to_string(), module: module.clone().unbind(), stamp });
        drop(replaced);
        Ok(module)
    }

    /// The loaded module of a single-file plugin whose file is unchanged, at the cost of one
    /// `stat` (this runs on every call). Anything else, including a file that is gone or has
    /// become a directory, takes the full path through `resolve`.
    fn unchanged_file<'py>(&self, py: Python<'py>, name: &str) -> Option<Bound<'py, PyModule>> {
        let loaded = self.loaded.lock();
        let (path, l) = loaded.iter().find(|(_, l)| l.name == name)?;
        let [(file, mtime, len)] = l.stamp.as_slice() else { return None };
        if file != path {
            return None;
        }
        let meta = std::fs::metadata(path).ok()?;
        (meta.is_file() && meta.modified().ok()? == *mtime && meta.len() == *len).then(|| l.module.bind(py).clone())
    }

    /// Checks a plugin for a new trigger: it loads and defines `function`. A plugin whose only
    /// fault is an import that fails (a package not installed yet, as InfluxDB 3 allows) is
    /// accepted if its source compiles and defines `function` at its top level: the answer is
    /// the import error, as a warning.
    pub fn check(&self, py: Python<'_>, name: &str, function: &str, spec: &str) -> Result<Option<String>, PluginError> {
        match self.function(py, name, function, spec) {
            Ok(_) => Ok(None),
            Err(PluginError::Load { detail, missing_import: true, .. }) => {
                let file = self.resolve(name)?;
                let file = if file.is_dir() { file.join("__init__.py") } else { file };
                let defines = defines_function(py, &file, function)
                    .map_err(|e| PluginError::Load { name: name.to_string(), detail: format_exception(py, &e), missing_import: false })?;
                if !defines {
                    return Err(PluginError::MissingFunction { name: name.to_string(), function: function.to_string(), spec: spec.to_string() });
                }
                Ok(Some(format!("plugin '{name}' cannot be imported yet (install its packages); its calls fail until it can:\n{detail}")))
            }
            Err(e) => Err(e),
        }
    }

    /// Loads the plugin and checks it defines `function`.
    pub fn function<'py>(&self, py: Python<'py>, name: &str, function: &str, spec: &str) -> Result<Bound<'py, PyAny>, PluginError> {
        let module = self.load(py, name)?;
        match module.getattr(function) {
            Ok(f) if f.is_callable() => Ok(f),
            _ => Err(PluginError::MissingFunction { name: name.to_string(), function: function.to_string(), spec: spec.to_string() }),
        }
    }
}

/// The plugin's files (a package's `.py` files, hidden ones and caches left out, in path
/// order), each with its modification time and size.
pub(super) fn stamp(path: &Path) -> Stamp {
    let mut out = Vec::new();
    collect_stamp(path, &mut out, 0);
    out.sort();
    out
}

fn collect_stamp(path: &Path, out: &mut Stamp, depth: usize) {
    let Ok(meta) = std::fs::metadata(path) else { return };
    if meta.is_dir() {
        // Bounded: a package is a handful of files, not a tree to walk forever.
        if depth > 4 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(path) else { return };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            if name.to_string_lossy().starts_with('.') || name == "__pycache__" {
                continue;
            }
            if p.is_dir() || p.extension().is_some_and(|x| x == "py") {
                collect_stamp(&p, out, depth + 1);
            }
        }
    } else {
        out.push((path.to_path_buf(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len()));
    }
}

/// A module name unique to the path, valid as a Python identifier.
fn module_name(path: &Path) -> String {
    let mut s = String::from("weir_plugin_");
    for c in path.to_string_lossy().chars() {
        s.push(if c.is_ascii_alphanumeric() { c } else { '_' });
    }
    s
}

/// Whether the source at `file` compiles and defines `function` at its top level (a `def`, an
/// `async def`, or an assignment of that name), without running it.
fn defines_function(py: Python<'_>, file: &Path, function: &str) -> PyResult<bool> {
    let source = std::fs::read_to_string(file).map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("{}: {e}", file.display())))?;
    let ast = py.import("ast")?;
    let tree = ast.call_method1("parse", (source, file.to_string_lossy().as_ref()))?;
    for node in tree.getattr("body")?.try_iter()? {
        let node = node?;
        let kind = node.get_type().name()?.to_string();
        let named = match kind.as_str() {
            "FunctionDef" | "AsyncFunctionDef" => node.getattr("name")?.extract::<String>()? == function,
            "Assign" => node
                .getattr("targets")?
                .try_iter()?
                .filter_map(|t| t.ok())
                .any(|t| t.getattr("id").and_then(|i| i.extract::<String>()).is_ok_and(|i| i == function)),
            _ => false,
        };
        if named {
            return Ok(true);
        }
    }
    Ok(false)
}

fn load_module<'py>(py: Python<'py>, path: &Path) -> PyResult<Bound<'py, PyModule>> {
    let name = module_name(path);
    let sys_modules = py.import("sys")?.getattr("modules")?;
    // Forget the previous version and its submodules, so a reload sees the new files.
    let stale: Vec<String> = sys_modules
        .call_method0("keys")?
        .try_iter()?
        .filter_map(|k| k.ok()?.extract::<String>().ok())
        .filter(|k| k == &name || k.starts_with(&format!("{name}.")))
        .collect();
    for k in stale {
        sys_modules.del_item(k)?;
    }
    let util = py.import("importlib.util")?;
    let path_str = path.to_string_lossy().into_owned();
    let kwargs = PyDict::new(py);
    let (file, package_dir) = if path.is_dir() {
        (path.join("__init__.py").to_string_lossy().into_owned(), Some(path_str.clone()))
    } else {
        (path_str.clone(), None)
    };
    if let Some(dir) = &package_dir {
        kwargs.set_item("submodule_search_locations", vec![dir.clone()])?;
    }
    // The plugin's own directory is importable, for multi-file plugins.
    let own_dir = Path::new(&file).parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let sys_path = py.import("sys")?.getattr("path")?;
    if !sys_path.contains(&own_dir)? {
        sys_path.call_method1("append", (&own_dir,))?;
    }
    let spec = util.call_method("spec_from_file_location", (&name, &file), Some(&kwargs))?;
    if spec.is_none() {
        return Err(pyo3::exceptions::PyImportError::new_err(format!("cannot load {file}")));
    }
    let module = util.call_method1("module_from_spec", (&spec,))?;
    sys_modules.set_item(&name, &module)?;
    // Source is read fresh each load (no stale .pyc when the mtime does not move).
    let loaded = (|| {
        let source = std::fs::read_to_string(&file).map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("{file}: {e}")))?;
        let builtins = py.import("builtins")?;
        let code = builtins.call_method1("compile", (source, &file, "exec"))?;
        let dict = module.getattr("__dict__")?;
        builtins.call_method1("exec", (code, dict))?;
        PyResult::Ok(())
    })();
    if let Err(e) = loaded {
        let _ = sys_modules.del_item(&name);
        return Err(e);
    }
    Ok(module.cast_into::<PyModule>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gh_names_cannot_leave_the_repository() {
        for bad in ["gh:%2e%2e/%2e%2e/evil/pwn.py", "gh:../x.py", "gh:a//b.py", "gh:a/./b.py", "gh:a\\b.py", "gh:a.py?x", "gh:x.txt", "gh:/x.py"] {
            let rel = &bad[3..];
            assert!(check_gh_path(bad, rel).is_err(), "{bad}");
        }
        assert!(check_gh_path("gh:influxdata/basic_transformation/basic_transformation.py", "influxdata/basic_transformation/basic_transformation.py").is_ok());
        // Refused before any download is tried.
        let dir = tempfile::tempdir().unwrap();
        let e = fetch_gh(dir.path(), "http://127.0.0.1:9/repo", "gh:%2e%2e/pwn.py").unwrap_err();
        assert!(matches!(e, PluginError::BadName { .. }), "{e}");
    }

    #[test]
    fn a_plugin_symlinked_out_of_the_plugin_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::write(dir.path().join("outside.py"), "x = 1\n").unwrap();
        std::fs::write(plugins.join("inside.py"), "x = 1\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.py"), plugins.join("link.py")).unwrap();
        std::os::unix::fs::symlink(plugins.join("inside.py"), plugins.join("alias.py")).unwrap();
        let loader = PluginLoader::new(plugins);
        assert!(loader.resolve("inside.py").is_ok());
        assert!(loader.resolve("alias.py").is_ok(), "a symlink that stays inside is fine");
        let e = loader.resolve("link.py").unwrap_err();
        assert!(e.to_string().contains("outside the plugin directory"), "{e}");
    }
}
