//! Client commands: each is one HTTP call to a running server, its answer printed.

use std::io::{IsTerminal, Read, Write};

use anyhow::{bail, Context};
use serde_json::json;

use super::{ClientArgs, CreateCommand, DeleteCommand, Language, QueryArgs, ShowCommand, WriteArgs};
use crate::http::paths;

pub(super) struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub(super) fn new(a: &ClientArgs) -> Client {
        let token = a.token.clone().filter(|t| !t.is_empty());
        Client { base: a.host.trim_end_matches('/').to_string(), token, agent: ureq::AgentBuilder::new().build() }
    }

    pub(super) fn request(&self, method: &str, path: &str) -> ureq::Request {
        let mut r = self.agent.request(method, &format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        r
    }

    /// Sends a request; an error status becomes an error naming the server's message.
    pub(super) fn send(&self, req: ureq::Request, body: Option<&[u8]>) -> anyhow::Result<Vec<u8>> {
        let res = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                bail!("server answered {code}: {}", text.trim());
            }
            Err(e) => return Err(anyhow::anyhow!("could not reach the server at {}: {e}", self.base)),
        };
        let mut out = Vec::new();
        resp.into_reader().read_to_end(&mut out)?;
        Ok(out)
    }
}

pub(super) fn print(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    if !bytes.ends_with(b"\n") && !bytes.is_empty() {
        out.write_all(b"\n")?;
    }
    Ok(())
}

pub fn write(a: WriteArgs) -> anyhow::Result<()> {
    let c = Client::new(&a.client);
    let body = match (&a.file, a.lines.is_empty()) {
        (Some(f), _) if f == "-" => read_stdin()?,
        (Some(f), _) => std::fs::read(f).with_context(|| format!("reading {f}"))?,
        (None, false) => a.lines.join("\n").into_bytes(),
        (None, true) if std::io::stdin().is_terminal() => {
            bail!("give line protocol as arguments, with --file PATH, or on stdin")
        }
        (None, true) => read_stdin()?,
    };
    let mut req = c
        .request("POST", paths::WRITE_V3)
        .query("db", &a.db.database)
        .query("accept_partial", if a.accept_partial { "true" } else { "false" });
    if let Some(p) = &a.precision {
        req = req.query("precision", p);
    }
    if a.no_sync {
        req = req.query("no_sync", "true");
    }
    c.send(req, Some(&body))?;
    println!("success");
    Ok(())
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut b = Vec::new();
    std::io::stdin().read_to_end(&mut b).context("reading stdin")?;
    Ok(b)
}

pub fn query(a: QueryArgs) -> anyhow::Result<()> {
    let c = Client::new(&a.client);
    let q = match (&a.file, &a.query) {
        (Some(f), _) => std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?,
        (None, Some(q)) => q.clone(),
        (None, None) => bail!("give the query as an argument or with --file"),
    };
    let mut body = json!({ "db": a.db.database, "q": q, "format": a.format });
    if let Some(p) = &a.params {
        let v: serde_json::Value = serde_json::from_str(p).context("--params must be a JSON object")?;
        body["params"] = v;
    }
    let path = match a.language {
        Language::Sql => paths::QUERY_SQL,
        Language::Influxql => paths::QUERY_INFLUXQL,
    };
    let out = c.send(c.request("POST", path).set("Content-Type", "application/json"), Some(body.to_string().as_bytes()));
    let out = match (a.language, out) {
        (Language::Influxql, Err(e)) if e.to_string().contains("answered 404") => {
            bail!("this server does not answer InfluxQL yet ({e}); use SQL")
        }
        (_, r) => r?,
    };
    print_or_save(&out, a.output.as_deref())
}

/// Prints an answer, or writes it to `output` when given (for `--format parquet`).
pub(super) fn print_or_save(out: &[u8], output: Option<&str>) -> anyhow::Result<()> {
    match output {
        Some(path) => std::fs::write(path, out).with_context(|| format!("writing {path}")),
        None => print(out),
    }
}

/// Runs SQL on the server and answers in `format`.
pub(super) fn sql(c: &Client, db: &str, q: &str, format: &str) -> anyhow::Result<Vec<u8>> {
    let body = json!({ "db": db, "q": q, "format": format }).to_string();
    c.send(c.request("POST", paths::QUERY_SQL).set("Content-Type", "application/json"), Some(body.as_bytes()))
}

pub fn create(what: CreateCommand) -> anyhow::Result<()> {
    match what {
        CreateCommand::Database { client, retention_period, name } => {
            let c = Client::new(&client);
            let body = json!({ "db": name, "retention_period": retention_period }).to_string();
            c.send(c.request("POST", "/api/v3/configure/database").set("Content-Type", "application/json"), Some(body.as_bytes()))?;
            println!("Database \"{name}\" created successfully");
        }
        CreateCommand::Table { client, db, tags, fields, name } => {
            let database = db.database;
            let c = Client::new(&client);
            let mut fs = Vec::new();
            for f in &fields {
                let (n, t) = f.split_once(':').with_context(|| format!("field '{f}' must be name:type"))?;
                fs.push(json!({ "name": n, "type": t }));
            }
            let body = json!({ "db": database, "table": name, "tags": tags, "fields": fs }).to_string();
            c.send(c.request("POST", "/api/v3/configure/table").set("Content-Type", "application/json"), Some(body.as_bytes()))?;
            println!("Table \"{database}\".\"{name}\" created successfully");
        }
        CreateCommand::Trigger(t) => super::engine::create_trigger(*t)?,
        CreateCommand::Token(t) => super::tokens::create(*t)?,
    }
    Ok(())
}

pub fn delete(what: DeleteCommand) -> anyhow::Result<()> {
    match what {
        DeleteCommand::Database { client, name } => {
            let c = Client::new(&client);
            c.send(c.request("DELETE", "/api/v3/configure/database").query("db", &name), None)?;
            println!("Database \"{name}\" deleted successfully");
        }
        DeleteCommand::Table { client, db, name } => {
            let database = db.database;
            let c = Client::new(&client);
            c.send(c.request("DELETE", "/api/v3/configure/table").query("db", &database).query("table", &name), None)?;
            println!("Table \"{database}\".\"{name}\" deleted successfully");
        }
        DeleteCommand::Trigger { client, db, force, name } => {
            let (database, name) = (db.database, name.get().to_string());
            let c = Client::new(&client);
            let body = json!({ "db": database, "trigger_name": name, "force": force }).to_string();
            c.send(c.request("DELETE", "/api/v3/configure/processing_engine_trigger").set("Content-Type", "application/json"), Some(body.as_bytes()))?;
            println!("Trigger {name} deleted successfully");
        }
        DeleteCommand::Token { client, token_name } => super::tokens::delete(&client, &token_name)?,
    }
    Ok(())
}

pub fn show(what: ShowCommand) -> anyhow::Result<()> {
    match what {
        ShowCommand::Databases { client, format } => {
            let c = Client::new(&client);
            let out = c.send(c.request("GET", "/api/v3/configure/database").query("format", &format), None)?;
            print(&out)
        }
        ShowCommand::Tokens { client, format } => super::tokens::show(&client, format),
        ShowCommand::Plugins { client, format, output } => super::plugin_files::show(&client, &format, output.as_deref()),
        ShowCommand::Retention { client, database, format } => super::admin::show_retention(&client, database.as_deref(), &format),
        ShowCommand::System { client, db, what } => super::admin::show_system(&client, &db.database, what),
    }
}
