//! `--upload` of `create trigger` / `update trigger`, and `weir show plugins`: plugin code sent
//! to the server's plugin directory over the API, and the list of plugin files in use.

use std::path::Path;

use anyhow::{bail, Context};
use serde_json::json;

use super::client::{print_or_save, sql, Client};
use super::ClientArgs;
use crate::http::paths;

/// The most files a plugin directory upload may hold (the server refuses more too).
const MAX_FILES: usize = 1000;

/// Sends a local plugin file, or a package directory (every file under it), to the server's
/// plugin directory, replacing what was there; returns the name triggers refer to it by.
pub fn upload(c: &Client, local: &str) -> anyhow::Result<String> {
    let path = Path::new(local);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("--path '{local}' has no file name to upload it under"))?
        .to_string();
    let meta = std::fs::metadata(path).with_context(|| format!("reading {local}"))?;
    if meta.is_file() {
        let content = std::fs::read_to_string(path).with_context(|| format!("reading {local} (a plugin is UTF-8 text)"))?;
        let body = json!({ "plugin_name": name, "content": content }).to_string();
        c.send(c.request("PUT", paths::PLUGIN_FILES).set("Content-Type", "application/json"), Some(body.as_bytes()))?;
        eprintln!("Uploaded {local} as {name}");
        return Ok(name);
    }
    if !path.join("__init__.py").is_file() {
        bail!("--path '{local}' is a directory without __init__.py: a package plugin needs one");
    }
    let mut files = Vec::new();
    collect(path, path, &mut files)?;
    let count = files.len();
    let body = json!({ "plugin_name": name, "files": files }).to_string();
    c.send(c.request("PUT", paths::PLUGIN_DIRECTORY).set("Content-Type", "application/json"), Some(body.as_bytes()))?;
    eprintln!("Uploaded {local} ({count} files) as {name}");
    Ok(name)
}

/// Every file under `dir` as `{"relative_path", "content"}`, skipping caches and hidden files.
fn collect(root: &Path, dir: &Path, out: &mut Vec<serde_json::Value>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "__pycache__" {
            continue;
        }
        let p = e.path();
        if e.file_type()?.is_dir() {
            collect(root, &p, out)?;
            continue;
        }
        if out.len() >= MAX_FILES {
            bail!("{} holds more than {MAX_FILES} files; copy it to the server's plugin directory instead", root.display());
        }
        let rel = p.strip_prefix(root).context("a file outside the plugin directory")?.to_string_lossy().into_owned();
        let content = std::fs::read_to_string(&p).with_context(|| format!("reading {} (plugin files are UTF-8 text)", p.display()))?;
        out.push(json!({ "relative_path": rel, "content": content }));
    }
    Ok(())
}

pub fn show(client: &ClientArgs, format: &str, output: Option<&str>) -> anyhow::Result<()> {
    let c = Client::new(client);
    let q = "SELECT * FROM system.plugin_files ORDER BY plugin_name, file_name";
    print_or_save(&sql(&c, pipeline::catalog::INTERNAL_DB, q, format)?, output)
}
