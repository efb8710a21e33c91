//! Plugin code written over the API (`/api/v3/plugins/files`, `/api/v3/plugins/directory`),
//! and the listing of plugin files behind `system.plugin_files`.
//!
//! It writes only inside the plugin directory, never under a hidden directory (the venv
//! `.venv`, the `gh:` cache `.gh`), and never through a symlink that leads out; each file is
//! written whole and renamed into place, so a plugin call never loads half a file. Blocking:
//! call it off the shards and the query runtime's workers.

use std::path::{Component, Path, PathBuf};

use super::plugin::{PluginError, PluginLoader};
use crate::trigger_status::PluginFileRow;

/// The most files one directory upload may hold.
pub const MAX_FILES: usize = 1000;

fn bad(name: &str, reason: impl Into<String>) -> PluginError {
    PluginError::BadName { name: name.to_string(), reason: reason.into() }
}

/// Checks a relative path for an upload: normal components only, none hidden.
fn check_relative(name: &str) -> Result<&Path, PluginError> {
    let rel = Path::new(name);
    if name.is_empty() || rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(bad(name, "it must be a relative path inside the plugin directory, without '..'"));
    }
    if rel.components().any(|c| c.as_os_str().to_string_lossy().starts_with('.')) {
        return Err(bad(name, "names starting with '.' are the server's own (the venv, the gh: cache)"));
    }
    Ok(rel)
}

/// `dir/rel`, after making its parent directories, checked (symlinks resolved) to lie inside
/// `dir`.
fn inside(dir: &Path, name: &str, rel: &Path) -> Result<PathBuf, PluginError> {
    let io = |e: std::io::Error| bad(name, format!("cannot write it: {e}"));
    let target = dir.join(rel);
    let parent = target.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(io)?;
    let (root, real) = (std::fs::canonicalize(dir).map_err(io)?, std::fs::canonicalize(parent).map_err(io)?);
    if !real.starts_with(&root) {
        return Err(bad(name, "it lies (through a symlink) outside the plugin directory"));
    }
    if target.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(bad(name, "it is a symlink; replace it on the server itself"));
    }
    Ok(target)
}

/// Writes `content` to `path` whole: into a temporary file beside it, synced, then renamed.
fn write_whole(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_file_name(format!(".{}.upload", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, content)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes one plugin file (a `.py` plugin, or a file a plugin reads, such as its TOML
/// configuration), creating or replacing it.
pub fn write_file(dir: &Path, name: &str, content: &str) -> Result<(), PluginError> {
    let rel = check_relative(name)?;
    let target = inside(dir, name, rel)?;
    if target.is_dir() {
        return Err(bad(name, "a directory of that name exists; replace it with /api/v3/plugins/directory"));
    }
    write_whole(&target, content.as_bytes()).map_err(|e| bad(name, format!("cannot write it: {e}")))
}

/// Replaces the package plugin `name` by `files` (`(relative path, content)`), which must hold
/// `__init__.py`: the new tree is built beside the old one and swapped in by renames.
pub fn write_directory(dir: &Path, name: &str, files: &[(String, String)]) -> Result<(), PluginError> {
    let rel = check_relative(name)?;
    if rel.components().count() != 1 {
        return Err(bad(name, "a package plugin is a directory at the top of the plugin directory"));
    }
    if files.is_empty() || files.len() > MAX_FILES {
        return Err(bad(name, format!("a package upload holds 1 to {MAX_FILES} files")));
    }
    if !files.iter().any(|(p, _)| Path::new(p) == Path::new("__init__.py")) {
        return Err(bad(name, "a package plugin needs an __init__.py at its top"));
    }
    for (p, _) in files {
        check_relative(p).map_err(|e| bad(name, format!("file '{p}': {e}")))?;
    }
    let target = inside(dir, name, rel)?;
    if target.is_file() {
        return Err(bad(name, "a file of that name exists; a package plugin needs the name for its directory"));
    }
    let io = |e: std::io::Error| bad(name, format!("cannot write it: {e}"));
    let staging = dir.join(format!(".{name}.upload"));
    let old = dir.join(format!(".{name}.replaced"));
    let _ = std::fs::remove_dir_all(&staging);
    let _ = std::fs::remove_dir_all(&old);
    for (p, content) in files {
        let path = staging.join(p);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        write_whole(&path, content.as_bytes()).map_err(io)?;
    }
    if target.exists() {
        std::fs::rename(&target, &old).map_err(io)?;
    }
    std::fs::rename(&staging, &target).map_err(io)?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// The files of `trigger`'s plugin `plugin` (a package's `.py` files, in name order); none
/// when the plugin cannot be found.
pub fn files_of(loader: &PluginLoader, trigger: &str, plugin: &str) -> Vec<PluginFileRow> {
    let Ok(path) = loader.resolve(plugin) else { return Vec::new() };
    // The files the loader watches for changes: the listing and the reloads agree.
    super::plugin::stamp(&path)
        .into_iter()
        .map(|(p, modified, size_bytes)| {
            let file_name = match p.strip_prefix(&path) {
                Ok(r) if !r.as_os_str().is_empty() => format!("{plugin}/{}", r.to_string_lossy()),
                _ => plugin.to_string(),
            };
            PluginFileRow {
                trigger_name: trigger.to_string(),
                file_name,
                file_path: p.to_string_lossy().into_owned(),
                size_bytes,
                last_modified_ms: modified.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_stay_inside_and_out_of_hidden_directories() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "a.py", "x = 1\n").unwrap();
        write_file(dir.path(), "conf/a.toml", "k = 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("conf/a.toml")).unwrap(), "k = 1\n");
        for bad in ["../a.py", "a/../../b.py", "/tmp/a.py", ".venv/lib/x.py", ".gh/x.py", ""] {
            assert!(write_file(dir.path(), bad, "x").is_err(), "{bad} was accepted");
        }
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        assert!(write_file(dir.path(), "link/x.py", "x").is_err());
        assert!(!outside.path().join("x.py").exists());
    }

    #[test]
    fn a_directory_upload_replaces_the_whole_package() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = vec![("__init__.py".to_string(), "from .m import f\n".to_string()), ("m.py".to_string(), "f = 1\n".to_string())];
        write_directory(dir.path(), "pkg", &v1).unwrap();
        let v2 = vec![("__init__.py".to_string(), "f = 2\n".to_string())];
        write_directory(dir.path(), "pkg", &v2).unwrap();
        assert!(!dir.path().join("pkg/m.py").exists(), "an old file survived the replacement");
        assert_eq!(std::fs::read_to_string(dir.path().join("pkg/__init__.py")).unwrap(), "f = 2\n");
        assert!(write_directory(dir.path(), "pkg2", &[("m.py".into(), String::new())]).is_err(), "no __init__.py");
        assert!(write_directory(dir.path(), "pkg3", &[("__init__.py".into(), String::new()), ("../x.py".into(), String::new())]).is_err());
        let rows = files_of(&PluginLoader::new(dir.path().to_path_buf()), "t", "pkg");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].file_name, "pkg/__init__.py");
        assert_eq!(rows[0].size_bytes, 6);
    }
}
