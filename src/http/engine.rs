//! Processing-engine routes: `/api/v3/configure/processing_engine_trigger` (create, update,
//! delete, enable, disable), plugin files (`/api/v3/plugins/files|directory`), `/api/v3/plugin_test/wal`, and the plugin environment's
//! `install_packages` / `install_requirements`, and request triggers under `/api/v3/engine/`.
//!
//! Thin: it parses the JSON shapes of SPEC §5 (also accepting the query string, as InfluxDB's
//! clients send for enable and disable) and hands over to the engine, whose errors become 4xx
//! through `error.rs`.

use std::collections::{BTreeMap, HashMap};

use hyper::StatusCode;
use pipeline::catalog::{ErrorBehavior, Trigger};
use serde::Deserialize;

use super::configure::{json_body, name_from};
use super::error::{empty_response, json_response, ApiError, Resp};
use crate::engine::spec::TriggerSpec;
use crate::engine::{DryRunInput, Engine};

#[derive(Deserialize, Default)]
struct TriggerSettings {
    #[serde(default)]
    run_async: bool,
    #[serde(default)]
    error_behavior: Option<String>,
    /// The trigger's time limit per call, as a duration (`10s`); absent: the server's default.
    #[serde(default)]
    timeout: Option<String>,
    /// Most memory one call may take, as a size (`256MiB`); absent: the server's default.
    #[serde(default)]
    memory_limit: Option<String>,
}

#[derive(Deserialize)]
struct CreateTrigger {
    db: String,
    trigger_name: String,
    /// `path` is InfluxDB 3's other name for it.
    #[serde(alias = "path")]
    plugin_filename: String,
    trigger_specification: String,
    #[serde(default)]
    trigger_arguments: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    trigger_settings: Option<TriggerSettings>,
    #[serde(default)]
    disabled: bool,
}

/// Trigger arguments are strings; numbers and booleans sent as JSON are taken as their text.
pub fn arguments_from_json(
    args: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    let Some(args) = args else { return Ok(None) };
    let mut out = BTreeMap::new();
    for (k, v) in args {
        let text = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                return Err(ApiError::BadRequest(format!(
                    "trigger argument '{k}' must be a string, number or boolean, not {other}"
                )))
            }
        };
        out.insert(k, text);
    }
    Ok(Some(out))
}

fn error_behavior(s: Option<&str>) -> Result<Option<ErrorBehavior>, ApiError> {
    match s {
        None | Some("") => Ok(None),
        Some(s) => ErrorBehavior::parse(s)
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest(format!("invalid error_behavior '{s}': expected log, retry or disable"))),
    }
}

fn timeout_ms(s: Option<&str>) -> Result<Option<u64>, ApiError> {
    match s {
        None | Some("") => Ok(None),
        Some(t) => Ok(Some(
            crate::time::parse_duration(t).map_err(|e| ApiError::BadRequest(format!("invalid timeout: {e}")))?.as_millis() as u64,
        )),
    }
}

fn memory_limit_bytes(s: Option<&str>) -> Result<Option<u64>, ApiError> {
    match s {
        None | Some("") => Ok(None),
        Some(m) => match crate::config::parse_size(m) {
            Ok(0) => Err(ApiError::BadRequest("invalid memory_limit: it must be more than zero bytes".into())),
            Ok(n) => Ok(Some(n)),
            Err(e) => Err(ApiError::BadRequest(format!("invalid memory_limit: {e}"))),
        },
    }
}

/// A trigger answer: empty, or the warning of a plugin that cannot be imported yet.
fn trigger_answer(warning: Option<String>) -> Resp {
    match warning {
        None => empty_response(StatusCode::OK),
        Some(warning) => json_response(StatusCode::OK, &serde_json::json!({ "warning": warning })),
    }
}

pub async fn create_trigger(engine: &Engine, body: &[u8]) -> Result<Resp, ApiError> {
    let req: CreateTrigger = json_body(
        body,
        r#"{"db", "trigger_name", "plugin_filename", "trigger_specification", "trigger_arguments", "trigger_settings": {"run_async", "error_behavior", "timeout", "memory_limit"}, "disabled"}"#,
    )?;
    let settings = req.trigger_settings.unwrap_or_default();
    let trigger = Trigger {
        name: req.trigger_name,
        plugin_filename: req.plugin_filename,
        specification: req.trigger_specification,
        arguments: arguments_from_json(req.trigger_arguments)?,
        run_async: settings.run_async,
        error_behavior: error_behavior(settings.error_behavior.as_deref())?.unwrap_or(ErrorBehavior::Log),
        disabled: req.disabled,
        timeout_ms: timeout_ms(settings.timeout.as_deref())?,
        memory_limit_bytes: memory_limit_bytes(settings.memory_limit.as_deref())?,
    };
    Ok(trigger_answer(engine.create_trigger(&req.db, trigger).await?))
}

/// `PUT`: changes what the body names and keeps the rest; `trigger_arguments: null` clears
/// the arguments.
pub async fn update_trigger(engine: &Engine, body: &[u8]) -> Result<Resp, ApiError> {
    const SHAPE: &str = r#"{"db", "trigger_name", and any of "plugin_filename", "trigger_arguments", "trigger_settings": {"run_async", "error_behavior", "timeout", "memory_limit"}, "disabled"}"#;
    let v: serde_json::Map<String, serde_json::Value> = json_body(body, SHAPE)?;
    let text = |k: &str| -> Result<Option<String>, ApiError> {
        match v.get(k) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(ApiError::BadRequest(format!("'{k}' must be a string, not {other}"))),
        }
    };
    let db = text("db")?.ok_or_else(|| ApiError::BadRequest(format!("missing 'db'; expected {SHAPE}")))?;
    let name = text("trigger_name")?.ok_or_else(|| ApiError::BadRequest(format!("missing 'trigger_name'; expected {SHAPE}")))?;
    let mut t = (*engine.trigger(&db, &name)?).clone();
    if let Some(p) = text("plugin_filename")?.or(text("path")?) {
        t.plugin_filename = p;
    }
    if let Some(spec) = text("trigger_specification")? {
        t.specification = spec;
    }
    match v.get("trigger_arguments") {
        None => {}
        Some(serde_json::Value::Null) => t.arguments = None,
        Some(serde_json::Value::Object(m)) => t.arguments = arguments_from_json(Some(m.clone()))?,
        Some(other) => return Err(ApiError::BadRequest(format!("'trigger_arguments' must be an object or null, not {other}"))),
    }
    if let Some(settings) = v.get("trigger_settings").filter(|s| !s.is_null()) {
        let s: TriggerSettings = serde_json::from_value(settings.clone())
            .map_err(|e| ApiError::BadRequest(format!("invalid trigger_settings: {e}; expected {SHAPE}")))?;
        if settings.get("run_async").is_some() {
            t.run_async = s.run_async;
        }
        if let Some(e) = error_behavior(s.error_behavior.as_deref())? {
            t.error_behavior = e;
        }
        if let Some(ms) = timeout_ms(s.timeout.as_deref())? {
            t.timeout_ms = Some(ms);
        }
        if let Some(b) = memory_limit_bytes(s.memory_limit.as_deref())? {
            t.memory_limit_bytes = Some(b);
        }
    }
    match v.get("disabled") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Bool(b)) => t.disabled = *b,
        Some(other) => return Err(ApiError::BadRequest(format!("'disabled' must be true or false, not {other}"))),
    }
    Ok(trigger_answer(engine.update_trigger(&db, t).await?))
}

#[derive(Deserialize)]
struct PluginFile {
    /// `path` and `filename` are other names clients use for it.
    #[serde(alias = "path", alias = "filename")]
    plugin_name: String,
    content: String,
}

/// `POST`/`PUT /api/v3/plugins/files`: `{"plugin_name", "content"}`, or the raw file as the
/// body with `?plugin_name=` (or `?path=`).
pub async fn put_plugin_file(engine: &Engine, body: &[u8], qs: &HashMap<String, String>) -> Result<Resp, ApiError> {
    let (name, content) = match qs.get("plugin_name").or(qs.get("path")).filter(|n| !n.is_empty()) {
        Some(name) => {
            let content = std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("a plugin file must be UTF-8 text".into()))?;
            (name.clone(), content.to_string())
        }
        None => {
            let f: PluginFile = json_body(body, r#"{"plugin_name": "x.py", "content": "..."}"#)?;
            (f.plugin_name, f.content)
        }
    };
    engine.write_plugin_file(name, content).await?;
    Ok(empty_response(StatusCode::OK))
}

#[derive(Deserialize)]
struct DirectoryFile {
    relative_path: String,
    content: String,
}

#[derive(Deserialize)]
struct PluginDirectory {
    #[serde(alias = "path")]
    plugin_name: String,
    files: Vec<DirectoryFile>,
}

/// `PUT /api/v3/plugins/directory`: `{"plugin_name", "files": [{"relative_path", "content"}]}`
/// replaces the package plugin's directory.
pub async fn put_plugin_directory(engine: &Engine, body: &[u8]) -> Result<Resp, ApiError> {
    let d: PluginDirectory =
        json_body(body, r#"{"plugin_name": "pkg", "files": [{"relative_path": "__init__.py", "content": "..."}]}"#)?;
    let files = d.files.into_iter().map(|f| (f.relative_path, f.content)).collect();
    engine.write_plugin_directory(d.plugin_name, files).await?;
    Ok(empty_response(StatusCode::OK))
}

pub fn delete_trigger(engine: &Engine, body: &[u8], qs: &HashMap<String, String>) -> Result<Resp, ApiError> {
    let db = name_from(body, qs, "db")?;
    let name = name_from(body, qs, "trigger_name")?;
    let force = force_from(body, qs)?;
    engine.delete_trigger(&db, &name, force)?;
    Ok(empty_response(StatusCode::OK))
}

fn force_from(body: &[u8], qs: &HashMap<String, String>) -> Result<bool, ApiError> {
    if !body.iter().all(|b| b.is_ascii_whitespace()) {
        let v: serde_json::Value = json_body(body, r#"{"db", "trigger_name", "force"}"#)?;
        if let Some(f) = v.get("force") {
            return f.as_bool().ok_or_else(|| ApiError::BadRequest("'force' must be true or false".into()));
        }
    }
    super::body::bool_param(qs, "force", false)
}

pub fn set_disabled(engine: &Engine, body: &[u8], qs: &HashMap<String, String>, disabled: bool) -> Result<Resp, ApiError> {
    let db = name_from(body, qs, "db")?;
    let name = name_from(body, qs, "trigger_name")?;
    engine.set_disabled(&db, &name, disabled)?;
    Ok(empty_response(StatusCode::OK))
}

#[derive(Deserialize)]
struct Replay {
    db: String,
    trigger_name: String,
    /// RFC 3339, or nanoseconds since the epoch (a JSON number or string).
    start: serde_json::Value,
    end: serde_json::Value,
}

fn instant(v: &serde_json::Value, what: &str) -> Result<i64, ApiError> {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        other => return Err(ApiError::BadRequest(format!("replay '{what}' must be an RFC 3339 time or nanoseconds, not {other}"))),
    };
    crate::time::parse_instant(&text).map_err(|e| ApiError::BadRequest(format!("replay '{what}': {e}")))
}

/// Starts replaying a WAL trigger over `[start, end)`: 202 with the job's progress (its `id`
/// is what `GET ?id=` takes).
pub fn start_replay(engine: &Engine, body: &[u8]) -> Result<Resp, ApiError> {
    let r: Replay = json_body(body, r#"{"db", "trigger_name", "start", "end"}"#)?;
    let (start, end) = (instant(&r.start, "start")?, instant(&r.end, "end")?);
    let id = engine.start_replay(&r.db, &r.trigger_name, start, end)?;
    progress_response(engine, id, StatusCode::ACCEPTED)
}

pub fn replay_progress(engine: &Engine, qs: &HashMap<String, String>) -> Result<Resp, ApiError> {
    let id = qs
        .get("id")
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| ApiError::BadRequest("give the replay's id as ?id=N".into()))?;
    progress_response(engine, id, StatusCode::OK)
}

fn progress_response(engine: &Engine, id: u64, status: StatusCode) -> Result<Resp, ApiError> {
    let p = engine.replay_progress(id).ok_or_else(|| ApiError::NotFound(format!("no replay with id {id}")))?;
    let mut value = serde_json::to_value(&p).map_err(|e| ApiError::Internal(e.to_string()))?;
    value["through_time"] = p.through_ns.map(crate::time::format_instant).into();
    Ok(json_response(status, &value))
}

/// What both plugin tests take besides their input.
#[derive(Deserialize)]
struct DryRunCommon {
    filename: String,
    database: String,
    #[serde(default)]
    input_arguments: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    cache_name: Option<String>,
}

#[derive(Deserialize)]
struct WalTest {
    #[serde(flatten)]
    common: DryRunCommon,
    #[serde(default)]
    input_lp: String,
}

#[derive(Deserialize)]
struct ScheduleTest {
    #[serde(flatten)]
    common: DryRunCommon,
    /// Absent or null: every second, as InfluxDB 3 (`influxdb3 test schedule_plugin` without
    /// `--schedule` sends null).
    #[serde(default)]
    schedule: Option<String>,
}

async fn dry_run(engine: &Engine, c: DryRunCommon, input: DryRunInput) -> Result<Resp, ApiError> {
    let args = arguments_from_json(c.input_arguments)?;
    let report = engine.dry_run(&c.filename, &c.database, input, args, c.cache_name).await?;
    let value = serde_json::to_value(&report).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(json_response(StatusCode::OK, &value))
}

pub async fn test_wal(engine: &Engine, body: &[u8]) -> Result<Resp, ApiError> {
    let req: WalTest = json_body(body, r#"{"filename", "database", "input_lp", "input_arguments", "cache_name"}"#)?;
    dry_run(engine, req.common, DryRunInput::Wal { lines: req.input_lp }).await
}

pub async fn test_schedule(engine: &Engine, body: &[u8]) -> Result<Resp, ApiError> {
    let req: ScheduleTest = json_body(body, r#"{"filename", "database", "schedule", "input_arguments", "cache_name"}"#)?;
    // A bare cron expression (as influxdb3 sends) or a full every:/cron: spec.
    let schedule = req.schedule.unwrap_or_else(|| "every:1s".into());
    let text = if schedule.contains(':') { schedule.clone() } else { format!("cron:{schedule}") };
    let spec = TriggerSpec::parse(&text).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if !spec.is_schedule() {
        return Err(ApiError::BadRequest(format!("'{schedule}' is not a schedule: use every:DURATION or a cron expression")));
    }
    dry_run(engine, req.common, DryRunInput::Schedule { spec }).await
}

#[derive(Deserialize)]
struct InstallPackages {
    packages: Vec<String>,
}

#[derive(Deserialize)]
struct InstallRequirements {
    requirements_location: String,
}

pub async fn install_packages(engine: &Engine, body: &[u8]) -> Result<Resp, ApiError> {
    let req: InstallPackages = json_body(body, r#"{"packages": ["name", ...]}"#)?;
    engine.install(crate::engine::packages::Install::Packages(req.packages)).await?;
    Ok(empty_response(StatusCode::OK))
}

pub async fn install_requirements(engine: &Engine, body: &[u8]) -> Result<Resp, ApiError> {
    let req: InstallRequirements = json_body(body, r#"{"requirements_location": "path"}"#)?;
    engine.install(crate::engine::packages::Install::Requirements(req.requirements_location.into())).await?;
    Ok(empty_response(StatusCode::OK))
}

/// `GET|POST /api/v3/engine/PATH`: the request trigger of PATH answers. Runs on the shard that
/// read the request (glommio), so the only thread hops are to the Python executor and back.
pub async fn serve_request(
    engine: &Engine,
    deadlines: &super::deadline::Deadlines,
    principal: &crate::auth::Principal,
    parts: &hyper::http::request::Parts,
    body: bytes::Bytes,
) -> Result<Resp, ApiError> {
    let path = parts.uri.path().trim_start_matches(super::paths::ENGINE_PREFIX).to_string();
    let db = engine.request_trigger_db(&path).ok_or_else(|| crate::engine::EngineError::NoRoute(path.clone()))?;
    principal.require(crate::auth::Action::Write(&db))?;
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let headers: Vec<(String, Vec<u8>)> =
        parts.headers.iter().map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec())).collect();
    let pending = engine.start_request(&path, query, headers, body)?;
    let bound = pending.bound;
    let reply = pending.wait(deadlines.after(bound)).await?;
    let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(reply.body)));
    *r.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in reply.headers {
        // A header the plugin set that HTTP cannot carry is dropped, not a failure.
        if let (Ok(k), Ok(v)) = (hyper::header::HeaderName::try_from(k.as_str()), hyper::header::HeaderValue::try_from(v.as_str())) {
            r.headers_mut().append(k, v);
        }
    }
    Ok(r)
}
