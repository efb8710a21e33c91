//! Making, regenerating, listing and deleting tokens: the text is made here, shown once to the
//! caller, and only its hash goes into the catalog.

use std::sync::Arc;

use pipeline::catalog::{CatalogError, CatalogOp};
use pipeline::tokens::{Grant, TokenRecord, OPERATOR_TOKEN_NAME};
use serde::Serialize;

use super::token::{self, OfflineTokenFile, TokenError};
use super::Authority;

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// What to make.
pub struct NewToken {
    pub name: String,
    pub expiry_ms: Option<i64>,
    pub grant: Grant,
}

/// A token just made: the only time its text is seen.
#[derive(Debug, Serialize)]
pub struct Made {
    pub id: u64,
    pub name: String,
    pub token: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub expiry: Option<i64>,
}

impl Made {
    fn new(stored: &TokenRecord, token: String) -> Made {
        Made { id: stored.id, name: stored.name.clone(), token, created_at: stored.created_at_ms, expiry: stored.expiry_ms }
    }
}

/// Stores `new` under a fresh token text (or `text`, from an offline file).
fn store(auth: &Authority, new: NewToken, text: Option<String>) -> Result<Made, IssueError> {
    let text = match text {
        Some(t) => t,
        None => token::generate()?,
    };
    let record = TokenRecord {
        id: 0,
        name: new.name.clone(),
        hash: token::hash_hex(&text),
        created_at_ms: crate::time::now_ms(),
        expiry_ms: new.expiry_ms,
        grant: new.grant,
    };
    let snapshot = auth.catalog().update(&[CatalogOp::CreateToken(record)])?;
    let stored = snapshot.tokens.get(&new.name).ok_or_else(|| CatalogError::TokenNotFound(new.name.clone()))?;
    Ok(Made::new(stored, text))
}

/// A named token. The operator's name is refused: that one is made by [`create_operator`].
pub fn create(auth: &Authority, new: NewToken) -> Result<Made, IssueError> {
    if new.name == OPERATOR_TOKEN_NAME {
        return Err(CatalogError::OperatorToken(format!("'{OPERATOR_TOKEN_NAME}' is the operator token's name")).into());
    }
    store(auth, new, None)
}

/// The operator token: made once (then `TokenExists`), never expiring.
pub fn create_operator(auth: &Authority, text: Option<String>) -> Result<Made, IssueError> {
    store(auth, NewToken { name: OPERATOR_TOKEN_NAME.into(), expiry_ms: None, grant: Grant::Admin }, text)
}

/// A new text for the operator token; the old one stops working at once.
pub fn regenerate_operator(auth: &Authority) -> Result<Made, IssueError> {
    let text = token::generate()?;
    let snapshot = auth
        .catalog()
        .update(&[CatalogOp::RehashToken { name: OPERATOR_TOKEN_NAME.into(), hash: token::hash_hex(&text) }])?;
    let t = snapshot.tokens.get(OPERATOR_TOKEN_NAME).ok_or_else(|| CatalogError::TokenNotFound(OPERATOR_TOKEN_NAME.into()))?;
    Ok(Made::new(t, text))
}

pub fn delete(auth: &Authority, name: &str) -> Result<(), IssueError> {
    auth.catalog().update(&[CatalogOp::DeleteToken(name.to_string())])?;
    Ok(())
}

pub fn list(auth: &Authority) -> Vec<Arc<TokenRecord>> {
    auth.catalog().snapshot().tokens.values().cloned().collect()
}

pub fn has_operator(auth: &Authority) -> bool {
    auth.catalog().snapshot().tokens.contains_key(OPERATOR_TOKEN_NAME)
}

/// Provisions the token of an offline token file (`--admin-token-file`) if no token of its name
/// exists; says so when one does with another text, which then stays in force.
pub fn provision(auth: &Authority, file: OfflineTokenFile) -> Result<(), IssueError> {
    let hash = token::hash_hex(&file.token);
    match auth.catalog().snapshot().tokens.get(&file.name) {
        Some(existing) if existing.hash == hash => return Ok(()),
        Some(_) => {
            tracing::warn!(token = %file.name, "the admin token file names a token that exists with another text; the stored one stays in force");
            return Ok(());
        }
        None => {}
    }
    let new = NewToken { name: file.name.clone(), expiry_ms: file.expiry_millis, grant: Grant::Admin };
    store(auth, new, Some(file.token))?;
    tracing::info!(token = %file.name, "admin token provisioned from --admin-token-file");
    Ok(())
}
