//! Token records as the catalog keeps them: a name, the SHA-256 of the token, what it may do and
//! until when.
//!
//! It never holds a token's text: the text is shown once, when the token is made, and only its
//! hash is stored (and copied to the object store with the catalog). Checking a presented token
//! against these records is the server's business (`weir::auth`).

use serde::{Deserialize, Serialize};

/// The operator token's name, as in InfluxDB 3: made once, never expires, cannot be deleted.
pub const OPERATOR_TOKEN_NAME: &str = "_admin";

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Grant {
    /// Everything (InfluxDB 3 Core's only kind of token).
    Admin,
    /// Only what the permissions list (InfluxDB 3 Enterprise's resource tokens).
    Resource { permissions: Vec<Permission> },
}

/// One resource permission: read and/or write on some databases, or read of system information.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    pub resource: Resource,
    /// Names the permission covers; `*` covers all.
    pub names: Vec<String>,
    pub read: bool,
    pub write: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Databases: reading them with queries, writing line protocol to them.
    Db,
    /// Server information (`/metrics`).
    System,
}

impl Permission {
    pub fn covers(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == "*" || n == name)
    }
}

/// A token as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: u64,
    pub name: String,
    /// Lower-case hex SHA-256 of the token's text.
    pub hash: String,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When it stops working (milliseconds since the epoch); `None`: never.
    pub expiry_ms: Option<i64>,
    pub grant: Grant,
}

impl TokenRecord {
    pub fn is_operator(&self) -> bool {
        self.name == OPERATOR_TOKEN_NAME
    }

    pub fn expired_at(&self, now_ms: i64) -> bool {
        self.expiry_ms.is_some_and(|e| now_ms >= e)
    }
}

/// A token name: 1–128 printable characters, no control characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(format!("token name '{}' must be 1-128 printable characters", name.escape_debug()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permission_covers_its_names_or_every_name_with_a_star() {
        let p = Permission { resource: Resource::Db, names: vec!["a".into()], read: true, write: false };
        assert!(p.covers("a") && !p.covers("b"));
        let all = Permission { names: vec!["*".into()], ..p };
        assert!(all.covers("b"));
    }

    #[test]
    fn expiry_is_inclusive_of_its_instant() {
        let t = TokenRecord {
            id: 1,
            name: "t".into(),
            hash: String::new(),
            created_at_ms: 0,
            expiry_ms: Some(10),
            grant: Grant::Admin,
        };
        assert!(!t.expired_at(9) && t.expired_at(10));
        assert!(!TokenRecord { expiry_ms: None, ..t }.expired_at(i64::MAX));
    }

    #[test]
    fn token_names_are_printable() {
        assert!(check_name("ci deploy").is_ok());
        assert!(check_name("").is_err() && check_name("a\nb").is_err() && check_name(&"x".repeat(129)).is_err());
    }
}
