//! Client commands for the processing engine: triggers, plugin tests, package installs.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use serde_json::json;

use super::client::{print, Client};
use super::{CreateTriggerArgs, InstallCommand, ReplayCommand, TestCommand, ToggleCommand, UpdateTriggerArgs};
use crate::http::paths;

/// `k=v` pairs (as influxdb3 takes them) into a map; a pair without `=` is an error.
fn key_values(pairs: &[String]) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut out = BTreeMap::new();
    for p in pairs {
        let (k, v) = p.split_once('=').with_context(|| format!("argument '{p}' must be key=value"))?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(Some(out))
}

/// `--trigger-arguments` pairs and `--trigger-arguments-json`, merged (the JSON wins).
fn trigger_arguments(pairs: &[String], json: Option<&str>) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    let mut args = key_values(pairs)?;
    if let Some(j) = json {
        let v: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(j).context("--trigger-arguments-json must be a JSON object")?;
        let map = args.get_or_insert_with(BTreeMap::new);
        for (k, v) in v {
            map.insert(k, v.as_str().map_or_else(|| v.to_string(), str::to_string));
        }
    }
    Ok(args)
}

/// Prints the warning a trigger answer may carry (a plugin whose imports fail yet).
fn show_warning(answer: &[u8]) {
    if let Some(w) = serde_json::from_slice::<serde_json::Value>(answer).ok().and_then(|v| v["warning"].as_str().map(str::to_string)) {
        eprintln!("warning: {w}");
    }
}

pub fn create_trigger(a: CreateTriggerArgs) -> anyhow::Result<()> {
    let c = Client::new(&a.client);
    let args = trigger_arguments(&a.trigger_arguments, a.trigger_arguments_json.as_deref())?;
    let plugin = if a.upload { super::plugin_files::upload(&c, &a.path)? } else { a.path.clone() };
    let name = a.name.get();
    let body = json!({
        "db": a.db.database,
        "trigger_name": name,
        "plugin_filename": plugin,
        "trigger_specification": a.trigger_spec,
        "trigger_arguments": args,
        "trigger_settings": { "run_async": a.run_asynchronous, "error_behavior": a.error_behavior },
        "disabled": a.disabled,
    });
    let answer = c.send(c.request("POST", paths::TRIGGER).set("Content-Type", "application/json"), Some(body.to_string().as_bytes()))?;
    println!("Trigger {name} created successfully");
    show_warning(&answer);
    Ok(())
}

/// `weir update trigger`: sends only what was given; the server keeps the rest.
pub fn update_trigger(a: UpdateTriggerArgs) -> anyhow::Result<()> {
    let c = Client::new(&a.client);
    let name = a.name.get();
    let mut body = json!({ "db": a.db.database, "trigger_name": name });
    if let Some(path) = &a.path {
        body["plugin_filename"] = json!(if a.upload { super::plugin_files::upload(&c, path)? } else { path.clone() });
    }
    if let Some(args) = trigger_arguments(&a.trigger_arguments, a.trigger_arguments_json.as_deref())? {
        body["trigger_arguments"] = json!(args);
    }
    if let Some(e) = &a.error_behavior {
        body["trigger_settings"] = json!({ "error_behavior": e });
    }
    if a.enabled || a.disabled {
        body["disabled"] = json!(a.disabled);
    }
    let answer = c.send(c.request("PUT", paths::TRIGGER).set("Content-Type", "application/json"), Some(body.to_string().as_bytes()))?;
    println!("Trigger {name} updated successfully");
    show_warning(&answer);
    Ok(())
}

pub fn toggle(what: ToggleCommand, disable: bool) -> anyhow::Result<()> {
    let ToggleCommand::Trigger { client, db, name } = what;
    let (database, name) = (db.database, name.get().to_string());
    let c = Client::new(&client);
    let path = if disable { "disable" } else { "enable" };
    let body = json!({ "db": database, "trigger_name": name }).to_string();
    c.send(
        c.request("POST", &format!("/api/v3/configure/processing_engine_trigger/{path}")).set("Content-Type", "application/json"),
        Some(body.as_bytes()),
    )?;
    println!("Trigger {name} {path}d successfully");
    Ok(())
}

/// The fields both plugin tests send.
fn dry_run_body(filename: String, database: String, args: &[String], cache_name: Option<String>) -> anyhow::Result<serde_json::Value> {
    Ok(json!({
        "filename": filename,
        "database": database,
        "input_arguments": key_values(args)?,
        "cache_name": cache_name,
    }))
}

pub fn test(what: TestCommand) -> anyhow::Result<()> {
    let (client, path, body) = match what {
        TestCommand::WalPlugin { client, db, lp, file, input_arguments, cache_name, filename } => {
            let input_lp = match (lp, file) {
                (Some(l), _) => l,
                (None, Some(f)) => std::fs::read_to_string(&f).with_context(|| format!("reading {f}"))?,
                (None, None) => bail!("give the input with --lp LINES or --file PATH"),
            };
            let mut body = dry_run_body(filename, db.database, &input_arguments, cache_name)?;
            body["input_lp"] = json!(input_lp);
            (client, "/api/v3/plugin_test/wal", body)
        }
        TestCommand::SchedulePlugin { client, db, schedule, input_arguments, cache_name, filename } => {
            let mut body = dry_run_body(filename, db.database, &input_arguments, cache_name)?;
            body["schedule"] = json!(schedule);
            (client, "/api/v3/plugin_test/schedule", body)
        }
    };
    let c = Client::new(&client);
    let out = c.send(c.request("POST", path).set("Content-Type", "application/json"), Some(body.to_string().as_bytes()))?;
    let v: serde_json::Value = serde_json::from_slice(&out).context("the server's answer is not JSON")?;
    print(serde_json::to_string_pretty(&v)?.as_bytes())
}

pub fn install(what: InstallCommand) -> anyhow::Result<()> {
    let InstallCommand::Package { client, requirements, packages } = what;
    let c = Client::new(&client);
    let (path, body) = match (requirements, packages.is_empty()) {
        (Some(r), true) => ("install_requirements", json!({ "requirements_location": r })),
        (None, false) => ("install_packages", json!({ "packages": packages })),
        _ => bail!("give package names, or --requirements FILE (not both)"),
    };
    c.send(
        c.request("POST", &format!("/api/v3/configure/plugin_environment/{path}")).set("Content-Type", "application/json"),
        Some(body.to_string().as_bytes()),
    )?;
    println!("Packages installed successfully");
    Ok(())
}

/// `weir replay trigger`: starts the replay, then prints its progress until it is done.
pub fn replay(what: ReplayCommand) -> anyhow::Result<()> {
    let ReplayCommand::Trigger { client, db, start, end, name } = what;
    let database = db.database;
    // Checked here too, so a typo is named before anything is sent.
    for (what, t) in [("--start", &start), ("--end", &end)] {
        crate::time::parse_instant(t).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    }
    let c = Client::new(&client);
    let body = json!({ "db": database, "trigger_name": name, "start": start, "end": end }).to_string();
    let answer = c.send(
        c.request("POST", "/api/v3/configure/processing_engine_trigger/replay").set("Content-Type", "application/json"),
        Some(body.as_bytes()),
    )?;
    let mut p: serde_json::Value = serde_json::from_slice(&answer).context("the server's answer is not JSON")?;
    let id = p["id"].as_u64().context("the server's answer has no replay id")?;
    let mut shown = String::new();
    loop {
        let line = format!(
            "replay {id} of {name}: {} rows in {} calls, {} failed{}",
            p["rows"], p["calls"], p["errors"],
            p["through_time"].as_str().map(|t| format!(", through {t} of table {}", p["table"].as_str().unwrap_or("?"))).unwrap_or_default()
        );
        if line != shown {
            eprintln!("{line}");
            shown = line;
        }
        match p["state"].as_str() {
            Some("running") => {}
            Some("done") if p["errors"].as_u64() == Some(0) => return Ok(()),
            Some("done") => bail!("replay {id} finished with {} failed calls (see system.processing_engine_logs)", p["errors"]),
            _ => bail!("replay {id} failed: {}", p["error"].as_str().unwrap_or("unknown error")),
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        let answer = c.send(c.request("GET", &format!("/api/v3/configure/processing_engine_trigger/replay?id={id}")), None)?;
        p = serde_json::from_slice(&answer).context("the server's answer is not JSON")?;
    }
}
