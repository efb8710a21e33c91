//! Client commands: each is one HTTP call to a running server, its answer printed.

use std::io::{Read, Write};

use anyhow::{bail, Context};
use serde_json::json;

use super::{ClientArgs, CreateCommand, DeleteCommand, QueryArgs, ShowCommand, WriteArgs};

pub(super) struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub(super) fn new(a: &ClientArgs) -> Client {
        // influxdb3's variable works too, so scripts written for it run unchanged.
        let token = a.token.clone().or_else(|| std::env::var("INFLUXDB3_AUTH_TOKEN").ok().filter(|t| !t.is_empty()));
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
    let body = match (&a.file, &a.lines) {
        (Some(f), _) if f == "-" => {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b)?;
            b
        }
        (Some(f), _) => std::fs::read(f).with_context(|| format!("reading {f}"))?,
        (None, Some(l)) => l.clone().into_bytes(),
        (None, None) => bail!("give line protocol as an argument, or --file PATH (- for stdin)"),
    };
    let mut req = c.request("POST", "/api/v3/write_lp").query("db", &a.database);
    if let Some(p) = &a.precision {
        req = req.query("precision", p);
    }
    if a.no_accept_partial {
        req = req.query("accept_partial", "false");
    }
    if a.no_sync {
        req = req.query("no_sync", "true");
    }
    c.send(req, Some(&body))?;
    println!("success");
    Ok(())
}

pub fn query(a: QueryArgs) -> anyhow::Result<()> {
    let c = Client::new(&a.client);
    let q = match (&a.file, &a.query) {
        (Some(f), _) => std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?,
        (None, Some(q)) => q.clone(),
        (None, None) => bail!("give the SQL query as an argument or with --file"),
    };
    let mut body = json!({ "db": a.database, "q": q, "format": a.format });
    if let Some(p) = &a.params {
        let v: serde_json::Value = serde_json::from_str(p).context("--params must be a JSON object")?;
        body["params"] = v;
    }
    let out = c.send(c.request("POST", "/api/v3/query_sql").set("Content-Type", "application/json"), Some(body.to_string().as_bytes()))?;
    match &a.output {
        Some(path) => std::fs::write(path, &out).with_context(|| format!("writing {path}"))?,
        None => print(&out)?,
    }
    Ok(())
}

pub fn create(what: CreateCommand) -> anyhow::Result<()> {
    match what {
        CreateCommand::Database { client, retention_period, name } => {
            let c = Client::new(&client);
            let body = json!({ "db": name, "retention_period": retention_period }).to_string();
            c.send(c.request("POST", "/api/v3/configure/database").set("Content-Type", "application/json"), Some(body.as_bytes()))?;
            println!("Database \"{name}\" created successfully");
        }
        CreateCommand::Table { client, database, tags, fields, name } => {
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
        DeleteCommand::Table { client, database, name } => {
            let c = Client::new(&client);
            c.send(c.request("DELETE", "/api/v3/configure/table").query("db", &database).query("table", &name), None)?;
            println!("Table \"{database}\".\"{name}\" deleted successfully");
        }
        DeleteCommand::Trigger { client, database, force, name } => {
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
    }
}
