//! Who is asking, and may they: tokens checked against the catalog's token records.
//!
//! [`Authority::identify`] turns a request's credentials into a [`Principal`] before its body is
//! read, so an unauthenticated client never makes the server buffer anything; the route then
//! asks [`Principal::require`] for the [`Action`] it is about to take (an admin action, or
//! reading or writing a named database). Which action each route needs is `http::paths`'
//! route table. Making, regenerating and deleting tokens is [`issue`].
//!
//! Tokens are compared by SHA-256, in constant time, against every record (there are few), and
//! no token text is ever logged or stored. With `--without-auth` every request is
//! [`Principal::Open`] and may do anything.

pub mod credentials;
pub mod issue;
pub mod token;

use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::header::HeaderMap;
use hyper::Uri;
use pipeline::catalog::Catalog;
use pipeline::tokens::{Grant, Resource, TokenRecord};

use self::token::TokenHash;

/// The name the processing engine's own token goes by in errors (it is never stored).
const ENGINE_PRINCIPAL: &str = "(processing engine)";

/// Who a request comes from.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Auth is off: anyone may do anything.
    Open,
    /// No credentials were asked for (public routes, making the operator token): may nothing.
    Anonymous,
    Admin { name: String, operator: bool },
    Resource { name: String, record: Arc<TokenRecord> },
}

/// What a request is about to do.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Configure the server: databases, tables, triggers, tokens, packages, debugging.
    Admin,
    /// Regenerate the operator token: only the operator may.
    Operator,
    Read(&'a str),
    Write(&'a str),
    /// Read server information (`/metrics`).
    System,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("this endpoint needs a token: send 'Authorization: Bearer TOKEN' (create the first one with 'weir create token --admin')")]
    Missing,
    #[error("{0}")]
    Malformed(String),
    #[error("the token is not valid")]
    Invalid,
    #[error("the token '{0}' has expired")]
    Expired(String),
    #[error("the token '{name}' may not {what}")]
    Forbidden { name: String, what: String },
}

impl AuthError {
    /// 401 for a caller not known, 403 for one known but not allowed.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, AuthError::Forbidden { .. })
    }
}

impl Principal {
    pub fn name(&self) -> &str {
        match self {
            Principal::Open => "(auth off)",
            Principal::Anonymous => "(none)",
            Principal::Admin { name, .. } | Principal::Resource { name, .. } => name,
        }
    }

    pub fn may(&self, action: Action<'_>) -> bool {
        match (self, action) {
            (Principal::Open, _) => true,
            (Principal::Anonymous, _) => false,
            (Principal::Admin { operator, .. }, Action::Operator) => *operator,
            (Principal::Admin { .. }, _) => true,
            (Principal::Resource { record, .. }, action) => {
                let Grant::Resource { permissions } = &record.grant else { return false };
                permissions.iter().any(|p| match action {
                    Action::Read(db) => p.resource == Resource::Db && p.read && p.covers(db),
                    Action::Write(db) => p.resource == Resource::Db && p.write && p.covers(db),
                    Action::System => p.resource == Resource::System && p.read,
                    Action::Admin | Action::Operator => false,
                })
            }
        }
    }

    pub fn require(&self, action: Action<'_>) -> Result<(), AuthError> {
        if self.may(action) {
            return Ok(());
        }
        let what = match action {
            Action::Admin => "configure the server (it needs an admin token)".to_string(),
            Action::Operator => "regenerate the operator token (only the operator token may)".to_string(),
            Action::Read(db) => format!("read database '{db}'"),
            Action::Write(db) => format!("write to database '{db}'"),
            Action::System => "read system information".to_string(),
        };
        Err(AuthError::Forbidden { name: self.name().to_string(), what })
    }
}

/// The catalog's token records, by hash, for the catalog version they were taken from.
struct Index {
    version: u64,
    entries: Vec<(TokenHash, Arc<TokenRecord>)>,
}

pub struct Authority {
    enabled: bool,
    catalog: Arc<Catalog>,
    index: ArcSwap<Index>,
    /// The token the processing engine hands its plugins (`INFLUXDB3_AUTH_TOKEN`): made at
    /// start, an admin, kept only in memory.
    engine_token: TokenHash,
    /// `/metrics` needs no token (`--disable-authz metrics`).
    public_metrics: bool,
}

impl Authority {
    /// Returns the authority and the engine's token text, for the plugins' environment.
    pub fn new(enabled: bool, catalog: Arc<Catalog>, public_metrics: bool) -> Result<(Authority, String), token::TokenError> {
        let engine_token = token::generate()?;
        let a = Authority {
            enabled,
            index: ArcSwap::from_pointee(build_index(&catalog)),
            catalog,
            engine_token: token::hash(&engine_token),
            public_metrics,
        };
        Ok((a, engine_token))
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn public_metrics(&self) -> bool {
        self.public_metrics || !self.enabled
    }

    /// The principal behind a request's credentials. `v1` routes also read `?p=`.
    pub fn identify(&self, headers: &HeaderMap, uri: &Uri, v1: bool) -> Result<Principal, AuthError> {
        if !self.enabled {
            return Ok(Principal::Open);
        }
        let presented = credentials::presented(headers, uri, v1).map_err(|e| AuthError::Malformed(e.0))?;
        self.authenticate(presented.as_deref())
    }

    pub fn authenticate(&self, presented: Option<&str>) -> Result<Principal, AuthError> {
        if !self.enabled {
            return Ok(Principal::Open);
        }
        let text = presented.ok_or(AuthError::Missing)?;
        let h = token::hash(text);
        if token::same(&h, &self.engine_token) {
            return Ok(Principal::Admin { name: ENGINE_PRINCIPAL.to_string(), operator: false });
        }
        let index = self.current_index();
        // Every record is compared, found or not, so the time taken says nothing of which.
        let mut found: Option<&Arc<TokenRecord>> = None;
        for (hash, record) in &index.entries {
            if token::same(hash, &h) {
                found = Some(record);
            }
        }
        let record = found.ok_or(AuthError::Invalid)?;
        if record.expired_at(crate::time::now_ms()) {
            return Err(AuthError::Expired(record.name.clone()));
        }
        Ok(match record.grant {
            Grant::Admin => Principal::Admin { name: record.name.clone(), operator: record.is_operator() },
            Grant::Resource { .. } => Principal::Resource { name: record.name.clone(), record: record.clone() },
        })
    }

    fn current_index(&self) -> Arc<Index> {
        let index = self.index.load_full();
        let version = self.catalog.snapshot().version;
        if index.version == version {
            return index;
        }
        let fresh = Arc::new(build_index(&self.catalog));
        self.index.store(fresh.clone());
        fresh
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }
}

fn build_index(catalog: &Catalog) -> Index {
    let snapshot = catalog.snapshot();
    let entries = snapshot
        .tokens
        .values()
        .filter_map(|r| match token::from_hex(&r.hash) {
            Some(h) => Some((h, r.clone())),
            None => {
                tracing::error!(token = %r.name, "a token record's hash is damaged; the token cannot be used");
                None
            }
        })
        .collect();
    Index { version: snapshot.version, entries }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::catalog::CatalogOp;
    use pipeline::tokens::Permission;

    fn authority() -> Authority {
        Authority::new(true, Arc::new(Catalog::in_memory()), false).unwrap().0
    }

    #[test]
    fn a_token_is_known_by_its_hash_until_it_expires_or_is_deleted() {
        let a = authority();
        assert!(matches!(a.authenticate(None), Err(AuthError::Missing)));
        let made = issue::create(&a, issue::NewToken { name: "ops".into(), expiry_ms: None, grant: Grant::Admin }).unwrap();
        assert!(matches!(a.authenticate(Some(&made.token)), Ok(Principal::Admin { operator: false, .. })));
        assert!(matches!(a.authenticate(Some("apiv3_wrong")), Err(AuthError::Invalid)));
        let old = issue::create(&a, issue::NewToken { name: "old".into(), expiry_ms: Some(1), grant: Grant::Admin }).unwrap();
        assert!(matches!(a.authenticate(Some(&old.token)), Err(AuthError::Expired(_))));
        a.catalog().update(&[CatalogOp::DeleteToken("ops".into())]).unwrap();
        assert!(matches!(a.authenticate(Some(&made.token)), Err(AuthError::Invalid)));
    }

    #[test]
    fn a_resource_token_may_only_what_its_permissions_say() {
        let a = authority();
        let grant = Grant::Resource {
            permissions: vec![Permission { resource: Resource::Db, names: vec!["a".into()], read: true, write: false }],
        };
        let made = issue::create(&a, issue::NewToken { name: "reader".into(), expiry_ms: None, grant }).unwrap();
        let p = a.authenticate(Some(&made.token)).unwrap();
        assert!(p.may(Action::Read("a")));
        assert!(!p.may(Action::Write("a")) && !p.may(Action::Read("b")) && !p.may(Action::Admin) && !p.may(Action::System));
        assert!(p.require(Action::Write("a")).unwrap_err().is_forbidden());
    }

    #[test]
    fn only_the_operator_may_regenerate_itself_and_auth_off_lets_everyone_in() {
        let a = authority();
        let op = issue::create_operator(&a, None).unwrap();
        let p = a.authenticate(Some(&op.token)).unwrap();
        assert!(p.may(Action::Operator));
        let named = issue::create(&a, issue::NewToken { name: "n".into(), expiry_ms: None, grant: Grant::Admin }).unwrap();
        assert!(!a.authenticate(Some(&named.token)).unwrap().may(Action::Operator));
        let open = Authority::new(false, Arc::new(Catalog::in_memory()), false).unwrap().0;
        assert!(open.authenticate(None).unwrap().may(Action::Operator));
    }
}
