//! `weir update database`, `weir show retention` and `weir show system`: database settings
//! and the system tables, read through the server's SQL endpoint.

use anyhow::{bail, Context};
use serde_json::json;

use super::client::{print, sql, Client};
use super::{ClientArgs, SystemCommand};
use crate::http::paths;
use crate::query::quote::{ident, literal};

use pipeline::catalog::INTERNAL_DB;

pub fn update_database(client: &ClientArgs, database: Option<String>, retention_period: &str) -> anyhow::Result<()> {
    let name = database.context("name the database: --database NAME (or last)")?;
    let c = Client::new(client);
    let body = json!({ "db": name, "retention_period": retention_period }).to_string();
    c.send(c.request("PUT", paths::CONFIGURE_DATABASE).set("Content-Type", "application/json"), Some(body.as_bytes()))?;
    println!("Database \"{name}\" updated successfully");
    Ok(())
}


pub fn show_retention(client: &ClientArgs, database: Option<&str>, format: &str) -> anyhow::Result<()> {
    let c = Client::new(client);
    let filter = database.map(|d| format!(" WHERE database_name = {}", literal(d))).unwrap_or_default();
    let q = format!("SELECT database_name, retention_period FROM system.databases{filter} ORDER BY database_name");
    print(&sql(&c, INTERNAL_DB, &q, format)?)
}

fn limit_clause(limit: u64) -> String {
    if limit == 0 { String::new() } else { format!(" LIMIT {limit}") }
}

pub fn show_system(client: &ClientArgs, db: &str, what: SystemCommand) -> anyhow::Result<()> {
    let c = Client::new(client);
    let list = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'system' ORDER BY table_name";
    match what {
        SystemCommand::TableList { format } => print(&sql(&c, db, list, &format)?),
        SystemCommand::Table { limit, order_by, select, format, name } => {
            let columns = if select.is_empty() { "*".to_string() } else { select.iter().map(|s| ident(s.trim())).collect::<Vec<_>>().join(", ") };
            let order = if order_by.is_empty() {
                String::new()
            } else {
                format!(" ORDER BY {}", order_by.iter().map(|s| ident(s.trim())).collect::<Vec<_>>().join(", "))
            };
            let q = format!("SELECT {columns} FROM system.{}{order}{}", ident(&name), limit_clause(limit));
            print(&sql(&c, db, &q, &format)?)
        }
        SystemCommand::Summary { limit, format } => {
            let tables: Vec<serde_json::Value> =
                serde_json::from_slice(&sql(&c, db, list, "json")?).context("the server's answer is not JSON")?;
            if tables.is_empty() {
                bail!("the server lists no system tables for database '{db}'");
            }
            for t in tables {
                let name = t["table_name"].as_str().context("a system table without a name")?;
                println!("{name}:");
                let q = format!("SELECT * FROM system.{}{}", ident(name), limit_clause(limit));
                print(&sql(&c, db, &q, &format)?)?;
                println!();
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_of_zero_is_none() {
        assert_eq!(limit_clause(0), "");
        assert_eq!(limit_clause(5), " LIMIT 5");
    }
}
