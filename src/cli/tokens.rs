//! `weir create token`, `weir show tokens`, `weir delete token`: InfluxDB 3's token commands,
//! plus offline token files for `serve --admin-token-file`.

use anyhow::{bail, Context};
use serde_json::json;

use super::client::{print, Client};
use super::{CreateTokenArgs, TokenFormat};
use crate::auth::token::{self, OfflineTokenFile};
use crate::http::paths;

/// An expiry as InfluxDB's CLI takes it (`1h`, `10d`, `2w`, `1y`), in seconds.
fn expiry_secs(s: &str) -> anyhow::Result<u64> {
    if let Ok(d) = crate::time::parse_duration(s) {
        return Ok(d.as_secs().max(1));
    }
    match pipeline::retention::parse(s) {
        Ok(Some(ns)) => Ok(ns / 1_000_000_000),
        _ => bail!("invalid --expiry '{s}': expected a number and a unit s, m, h, d, w, mo or y (e.g. 30d)"),
    }
}

/// `RESOURCE_TYPE:NAMES:ACTIONS`, e.g. `db:a,b:read,write` or `system:*:read`.
fn permission(p: &str) -> anyhow::Result<serde_json::Value> {
    let parts: Vec<&str> = p.split(':').collect();
    let [kind, names, actions] = parts.as_slice() else {
        bail!("invalid --permission '{p}': expected RESOURCE_TYPE:NAMES:ACTIONS, e.g. db:mydb:read,write")
    };
    let list = |s: &str| s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(String::from).collect::<Vec<_>>();
    Ok(json!({ "resource_type": kind, "resource_identifier": list(names), "actions": list(actions) }))
}

fn show_made(answer: &[u8], format: TokenFormat) -> anyhow::Result<()> {
    if format == TokenFormat::Json {
        return print(answer);
    }
    let v: serde_json::Value = serde_json::from_slice(answer).context("the server's answer is not JSON")?;
    let token = v.get("token").and_then(|t| t.as_str()).context("the server's answer holds no token")?;
    println!("New token created successfully!\n\nToken: {token}\nHTTP Requests Header: Authorization: Bearer {token}\n");
    println!("IMPORTANT: Store this token securely, as it will not be shown again.");
    Ok(())
}

pub fn create(a: CreateTokenArgs) -> anyhow::Result<()> {
    let expiry = a.expiry.as_deref().map(expiry_secs).transpose()?;
    if a.offline {
        let path = a.output_file.as_ref().context("--offline needs --output-file")?;
        let expiry_millis = expiry.map(|s| crate::time::now_ms() + (s as i64).saturating_mul(1000));
        let name = a.name.clone().unwrap_or_else(|| pipeline::tokens::OPERATOR_TOKEN_NAME.into());
        let file = OfflineTokenFile { token: token::generate()?, name, expiry_millis };
        file.write(path)?;
        println!("Token saved to {} (give it to 'weir serve --admin-token-file')", path.display());
        return Ok(());
    }
    let c = Client::new(&a.client);
    let json_post = |path: &str, body: Option<serde_json::Value>| {
        let req = c.request("POST", path).set("Content-Type", "application/json");
        c.send(req, body.map(|b| b.to_string().into_bytes()).as_deref())
    };
    let answer = if !a.permission.is_empty() {
        let name = a.name.as_deref().context("a resource token needs --name")?;
        let permissions = a.permission.iter().map(|p| permission(p)).collect::<anyhow::Result<Vec<_>>>()?;
        json_post(paths::TOKEN_RESOURCE, Some(json!({ "token_name": name, "permissions": permissions, "expiry_secs": expiry })))?
    } else if a.regenerate {
        json_post(paths::TOKEN_ADMIN_REGENERATE, None)?
    } else if let Some(name) = &a.name {
        json_post(paths::TOKEN_NAMED_ADMIN, Some(json!({ "token_name": name, "expiry_secs": expiry })))?
    } else {
        if expiry.is_some() {
            bail!("the operator token never expires: give --name to make a named admin token with --expiry");
        }
        json_post(paths::TOKEN_ADMIN, None)?
    };
    show_made(&answer, a.format)
}

pub fn show(client: &super::ClientArgs, format: TokenFormat) -> anyhow::Result<()> {
    let c = Client::new(client);
    let answer = c.send(c.request("GET", paths::TOKEN), None)?;
    if format == TokenFormat::Json {
        return print(&answer);
    }
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&answer).context("the server's answer is not JSON")?;
    let when = |v: &serde_json::Value| v.as_i64().map_or("never".to_string(), |ms| crate::time::format_instant(ms.saturating_mul(1_000_000)));
    let table: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let expired = if r["expired"].as_bool() == Some(true) { " (expired)" } else { "" };
            [
                r["id"].to_string(),
                r["name"].as_str().unwrap_or_default().to_string(),
                r["permissions"].as_str().unwrap_or_default().to_string(),
                when(&r["created_at"]),
                format!("{}{expired}", when(&r["expiry"])),
            ]
        })
        .collect();
    let header = ["id", "name", "permissions", "created_at", "expiry"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&table) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", cells.join("  ").trim_end());
    }
    Ok(())
}

pub fn delete(client: &super::ClientArgs, name: &str) -> anyhow::Result<()> {
    let c = Client::new(client);
    c.send(c.request("DELETE", paths::TOKEN).query("token_name", name), None)?;
    println!("Token \"{name}\" deleted successfully");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_take_influxdb_units() {
        assert_eq!(expiry_secs("90s").unwrap(), 90);
        assert_eq!(expiry_secs("10d").unwrap(), 864_000);
        assert_eq!(expiry_secs("1y").unwrap(), 31_536_000);
        assert!(expiry_secs("soon").is_err());
    }

    #[test]
    fn permissions_are_type_names_actions() {
        let p = permission("db:a,b:read,write").unwrap();
        assert_eq!(p["resource_identifier"], json!(["a", "b"]));
        assert_eq!(p["actions"], json!(["read", "write"]));
        assert!(permission("db:a").is_err());
    }
}
