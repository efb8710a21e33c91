//! The catalog: databases, their tables and each table's typed columns.
//!
//! One writer, many readers. Readers take a lock-free `Arc` snapshot (arc-swap); every change
//! goes through [`Catalog::update`], which builds the next version, persists it (write to a
//! temporary file, fdatasync, rename, fsync the directory) and only then publishes it. So a
//! column that a WAL record relies on is always durable before the record is acked.
//!
//! It also keeps each database's processing-engine triggers (their definition and whether they
//! are disabled), so they survive restarts; what a trigger *does* is the engine's business.
//!
//! It keeps the server's tokens too (their hashes and grants, [`crate::tokens`]); never their
//! text.
//!
//! It never holds row data, and it never lets a column change type: the first write fixes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::tokens::TokenRecord;

/// The type of a field column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Float,
    Integer,
    UInteger,
    String,
    Boolean,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Float => "float",
            FieldType::Integer => "integer",
            FieldType::UInteger => "uinteger",
            FieldType::String => "string",
            FieldType::Boolean => "boolean",
        }
    }

    pub fn parse(s: &str) -> Option<FieldType> {
        Some(match s {
            "float" | "float64" | "f64" => FieldType::Float,
            "integer" | "int64" | "i64" | "int" => FieldType::Integer,
            "uinteger" | "uint64" | "u64" => FieldType::UInteger,
            "string" | "utf8" | "str" => FieldType::String,
            "boolean" | "bool" => FieldType::Boolean,
            _ => return None,
        })
    }
}

/// What a column is: a tag, a typed field, or the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "type")]
pub enum ColumnKind {
    Tag,
    Field(FieldType),
    Time,
}

impl ColumnKind {
    pub fn describe(self) -> String {
        match self {
            ColumnKind::Tag => "tag".into(),
            ColumnKind::Field(t) => format!("{} field", t.name()),
            ColumnKind::Time => "time".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    pub id: u32,
    pub name: String,
    /// In order of first appearance; `time` is always present.
    pub columns: Vec<Column>,
    /// The commit number the next commit would have taken when the table was made: every WAL
    /// record of an earlier table of the same name (deleted since) has a lower one, so replay
    /// never hands this table the rows of the one it replaced.
    #[serde(default)]
    pub created_commit: u64,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// What a trigger does when its plugin raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorBehavior {
    /// Log the error and go on with the next event.
    #[default]
    Log,
    /// Run the same event again, a bounded number of times with backoff.
    Retry,
    /// Log the error and disable the trigger until it is enabled again.
    Disable,
}

impl ErrorBehavior {
    pub fn parse(s: &str) -> Option<ErrorBehavior> {
        Some(match s.to_ascii_lowercase().as_str() {
            "log" => ErrorBehavior::Log,
            "retry" => ErrorBehavior::Retry,
            "disable" => ErrorBehavior::Disable,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorBehavior::Log => "log",
            ErrorBehavior::Retry => "retry",
            ErrorBehavior::Disable => "disable",
        }
    }
}

/// A processing-engine trigger as the catalog keeps it. The specification is kept as text; the
/// engine parses (and validated) it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub name: String,
    pub plugin_filename: String,
    pub specification: String,
    pub arguments: Option<BTreeMap<String, String>>,
    pub run_async: bool,
    pub error_behavior: ErrorBehavior,
    pub disabled: bool,
    /// Longest one call may run; `None` takes the server's default.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Most memory one call may take; `None` takes the server's default.
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Database {
    pub id: u32,
    pub name: String,
    pub tables: BTreeMap<String, Arc<Table>>,
    pub next_table_id: u32,
    /// Absent from catalogs written before triggers existed.
    #[serde(default)]
    pub triggers: BTreeMap<String, Arc<Trigger>>,
    /// How long rows are kept, in nanoseconds (`None`: forever). Set at creation, changed by
    /// [`CatalogOp::SetRetention`] (`weir update database`).
    #[serde(default)]
    pub retention_ns: Option<u64>,
}

impl Database {
    /// The oldest row time still kept at `now_ns` (`None`: every row is).
    pub fn retention_cutoff(&self, now_ns: i64) -> Option<i64> {
        crate::retention::cutoff(self.retention_ns, now_ns)
    }
}

impl Database {
    pub fn table(&self, name: &str) -> Option<&Arc<Table>> {
        self.tables.get(name)
    }

    pub fn table_by_id(&self, id: u32) -> Option<&Arc<Table>> {
        self.tables.values().find(|t| t.id == id)
    }
}

/// One immutable version of the catalog.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CatalogSnapshot {
    pub version: u64,
    pub next_db_id: u32,
    pub databases: BTreeMap<String, Arc<Database>>,
    /// Tokens by name. Absent from catalogs written before tokens existed.
    #[serde(default)]
    pub tokens: BTreeMap<String, Arc<TokenRecord>>,
    #[serde(default)]
    pub next_token_id: u64,
}

impl CatalogSnapshot {
    pub fn db(&self, name: &str) -> Option<&Arc<Database>> {
        self.databases.get(name)
    }

    pub fn db_by_id(&self, id: u32) -> Option<&Arc<Database>> {
        self.databases.values().find(|d| d.id == id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("database '{0}' already exists")]
    DatabaseExists(String),
    #[error("database '{0}' not found")]
    DatabaseNotFound(String),
    #[error("table '{0}' already exists")]
    TableExists(String),
    #[error("table '{0}' not found")]
    TableNotFound(String),
    #[error("invalid name: {0}")]
    InvalidName(String),
    #[error("trigger '{0}' already exists")]
    TriggerExists(String),
    #[error("trigger '{0}' not found")]
    TriggerNotFound(String),
    #[error("token '{0}' already exists")]
    TokenExists(String),
    #[error("token '{0}' not found")]
    TokenNotFound(String),
    #[error("{0}")]
    OperatorToken(String),
    #[error("column '{column}' is a {existing}, not a {wanted}")]
    ColumnConflict { column: String, existing: String, wanted: String },
    #[error("catalog storage failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("catalog file is corrupt: {0}")]
    Corrupt(String),
}

/// The server's own database: never in the catalog or written to; its `system` tables cover
/// every database (as InfluxDB 3's do).
pub const INTERNAL_DB: &str = "_internal";

/// Checks a database name: 1–64 characters of letters, digits, `_` and `-`, starting with a
/// letter or digit (what InfluxDB 3 accepts).
pub fn validate_db_name(name: &str) -> Result<(), CatalogError> {
    if name == INTERNAL_DB {
        return Err(CatalogError::InvalidName(
            "'_internal' is the server's own database: it can be queried (its system tables cover every database) but not written to or made".into(),
        ));
    }
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(CatalogError::InvalidName(format!(
            "database name '{name}' must be 1-64 letters, digits, '_' or '-', starting with a letter or digit"
        )))
    }
}

/// Changes one update can ask for. Applying one is idempotent where that makes sense
/// (creating what already exists with the same shape succeeds), so racing shards agree.
#[derive(Debug, Clone)]
pub enum CatalogOp {
    /// Create the database if it is missing.
    EnsureDatabase(String),
    /// Create a database, keeping rows for `retention_ns` (`None`: forever); an error if it
    /// exists.
    CreateDatabase { name: String, retention_ns: Option<u64> },
    DeleteDatabase(String),
    /// Change how long a database keeps rows (`None`: forever); idempotent.
    SetRetention { db: String, retention_ns: Option<u64> },
    /// Add a table (if missing) and any missing columns; an error if a column has another kind.
    EnsureColumns { db: String, table: String, columns: Vec<Column> },
    /// Create a table; an error if it exists.
    CreateTable { db: String, table: String, columns: Vec<Column> },
    DeleteTable { db: String, table: String },
    /// Add a trigger; an error if one of that name exists in the database.
    CreateTrigger { db: String, trigger: Trigger },
    DeleteTrigger { db: String, name: String },
    /// Replace a trigger's definition (same name); an error if there is none to replace.
    ReplaceTrigger { db: String, trigger: Trigger },
    /// Enable or disable a trigger; idempotent.
    SetTriggerDisabled { db: String, name: String, disabled: bool },
    /// Add a token (its `id` is assigned here); an error if one of that name exists.
    CreateToken(TokenRecord),
    /// Give a token a new hash (regenerating it); the old text stops working.
    RehashToken { name: String, hash: String },
    /// Remove a token; the operator token cannot be removed.
    DeleteToken(String),
}

/// The catalog: current snapshot plus the single writer.
pub struct Catalog {
    current: ArcSwap<CatalogSnapshot>,
    writer: Mutex<()>,
    path: Option<PathBuf>,
    /// The write buffer's commit counter, read when a table is made ([`Table::created_commit`]).
    commits: OnceLock<Arc<AtomicU64>>,
}

const FILE_NAME: &str = "catalog.json";

impl Catalog {
    /// A catalog kept only in memory.
    pub fn in_memory() -> Catalog {
        Catalog::with(CatalogSnapshot::default(), None)
    }

    fn with(snapshot: CatalogSnapshot, path: Option<PathBuf>) -> Catalog {
        Catalog { current: ArcSwap::from_pointee(snapshot), writer: Mutex::new(()), path, commits: OnceLock::new() }
    }

    /// An in-memory copy of `snapshot` that persists nothing: replay validates logged lines
    /// against it, so that nothing it does can create a database, table or column in the real
    /// catalog.
    pub fn detached(snapshot: &CatalogSnapshot) -> Catalog {
        Catalog::with(snapshot.clone(), None)
    }

    /// Loads the catalog from `dir`, or starts an empty one there.
    pub fn open(dir: &Path) -> Result<Catalog, CatalogError> {
        Catalog::open_seeded(dir, None)
    }

    /// Loads the catalog from `dir`, or from `copy` (the object store's copy) where that is
    /// newer or the local file is missing: a node whose local disk was lost or replaced starts
    /// from the catalog its Parquet files were written under. The chosen version is written
    /// to `dir` before this returns.
    pub fn open_seeded(dir: &Path, copy: Option<CatalogSnapshot>) -> Result<Catalog, CatalogError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let local: Option<CatalogSnapshot> = match std::fs::read(&path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| CatalogError::Corrupt(e.to_string()))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let snapshot = match (local, copy) {
            (Some(l), Some(c)) if c.version > l.version => {
                persist(&path, &c)?;
                c
            }
            (Some(l), _) => l,
            (None, Some(c)) => {
                persist(&path, &c)?;
                c
            }
            (None, None) => CatalogSnapshot::default(),
        };
        Ok(Catalog::with(snapshot, Some(path)))
    }

    /// Tables made from now on record `commits`' value ([`Table::created_commit`]). Set once.
    pub fn use_commit_counter(&self, commits: Arc<AtomicU64>) {
        let _ = self.commits.set(commits);
    }

    /// The current version, lock-free.
    pub fn snapshot(&self) -> Arc<CatalogSnapshot> {
        self.current.load_full()
    }

    /// Applies `ops` in order as one new version, persisted before it is published. If nothing
    /// changes, no version is written.
    pub fn update(&self, ops: &[CatalogOp]) -> Result<Arc<CatalogSnapshot>, CatalogError> {
        let _guard = self.writer.lock();
        let old = self.current.load_full();
        let mut next = (*old).clone();
        let mut changed = false;
        for op in ops {
            changed |= apply(&mut next, op, self.commits.get().map(|c| c.as_ref()))?;
        }
        if !changed {
            return Ok(old);
        }
        next.version = old.version + 1;
        if let Some(path) = &self.path {
            persist(path, &next)?;
        }
        let next = Arc::new(next);
        self.current.store(next.clone());
        Ok(next)
    }
}

fn apply(cat: &mut CatalogSnapshot, op: &CatalogOp, commits: Option<&AtomicU64>) -> Result<bool, CatalogError> {
    match op {
        CatalogOp::EnsureDatabase(name) | CatalogOp::CreateDatabase { name, .. } => {
            validate_db_name(name)?;
            if cat.databases.contains_key(name) {
                return match op {
                    CatalogOp::CreateDatabase { .. } => Err(CatalogError::DatabaseExists(name.clone())),
                    _ => Ok(false),
                };
            }
            let id = cat.next_db_id;
            cat.next_db_id += 1;
            cat.databases.insert(
                name.clone(),
                Arc::new(Database {
                    id,
                    name: name.clone(),
                    tables: BTreeMap::new(),
                    next_table_id: 0,
                    triggers: BTreeMap::new(),
                    retention_ns: match op {
                        CatalogOp::CreateDatabase { retention_ns, .. } => *retention_ns,
                        _ => None,
                    },
                }),
            );
            Ok(true)
        }
        CatalogOp::DeleteDatabase(name) => {
            cat.databases.remove(name).ok_or_else(|| CatalogError::DatabaseNotFound(name.clone()))?;
            Ok(true)
        }
        CatalogOp::EnsureColumns { db, table, columns } | CatalogOp::CreateTable { db, table, columns } => {
            let create = matches!(op, CatalogOp::CreateTable { .. });
            let dbm = cat.databases.get_mut(db).ok_or_else(|| CatalogError::DatabaseNotFound(db.clone()))?;
            let dbm = Arc::make_mut(dbm);
            if create && dbm.tables.contains_key(table) {
                return Err(CatalogError::TableExists(table.clone()));
            }
            if table.is_empty() {
                return Err(CatalogError::InvalidName("table name must not be empty".into()));
            }
            let mut changed = false;
            if !dbm.tables.contains_key(table) {
                let id = dbm.next_table_id;
                dbm.next_table_id += 1;
                let created_commit = commits.map_or(0, |c| c.load(std::sync::atomic::Ordering::Acquire));
                let t = Table {
                    id,
                    name: table.clone(),
                    columns: vec![Column { name: "time".into(), kind: ColumnKind::Time }],
                    created_commit,
                };
                dbm.tables.insert(table.clone(), Arc::new(t));
                changed = true;
            }
            let t = Arc::make_mut(dbm.tables.get_mut(table).ok_or_else(|| CatalogError::TableNotFound(table.clone()))?);
            for col in columns {
                match t.column(&col.name) {
                    Some(existing) if existing.kind == col.kind => {}
                    Some(existing) => {
                        return Err(CatalogError::ColumnConflict {
                            column: col.name.clone(),
                            existing: existing.kind.describe(),
                            wanted: col.kind.describe(),
                        })
                    }
                    None => {
                        t.columns.push(col.clone());
                        changed = true;
                    }
                }
            }
            Ok(changed)
        }
        CatalogOp::DeleteTable { db, table } => {
            let dbm = cat.databases.get_mut(db).ok_or_else(|| CatalogError::DatabaseNotFound(db.clone()))?;
            let dbm = Arc::make_mut(dbm);
            dbm.tables.remove(table).ok_or_else(|| CatalogError::TableNotFound(table.clone()))?;
            Ok(true)
        }
        CatalogOp::CreateTrigger { db, trigger } => {
            let dbm = Arc::make_mut(db_mut(cat, db)?);
            if dbm.triggers.contains_key(&trigger.name) {
                return Err(CatalogError::TriggerExists(trigger.name.clone()));
            }
            dbm.triggers.insert(trigger.name.clone(), Arc::new(trigger.clone()));
            Ok(true)
        }
        CatalogOp::ReplaceTrigger { db, trigger } => {
            let dbm = Arc::make_mut(db_mut(cat, db)?);
            let old = dbm.triggers.get_mut(&trigger.name).ok_or_else(|| CatalogError::TriggerNotFound(trigger.name.clone()))?;
            if **old == *trigger {
                return Ok(false);
            }
            *old = Arc::new(trigger.clone());
            Ok(true)
        }
        CatalogOp::DeleteTrigger { db, name } => {
            let dbm = Arc::make_mut(db_mut(cat, db)?);
            dbm.triggers.remove(name).ok_or_else(|| CatalogError::TriggerNotFound(name.clone()))?;
            Ok(true)
        }
        CatalogOp::SetRetention { db, retention_ns } => {
            let dbm = Arc::make_mut(db_mut(cat, db)?);
            if dbm.retention_ns == *retention_ns {
                return Ok(false);
            }
            dbm.retention_ns = *retention_ns;
            Ok(true)
        }
        CatalogOp::SetTriggerDisabled { db, name, disabled } => {
            let dbm = Arc::make_mut(db_mut(cat, db)?);
            let t = dbm.triggers.get_mut(name).ok_or_else(|| CatalogError::TriggerNotFound(name.clone()))?;
            if t.disabled == *disabled {
                return Ok(false);
            }
            Arc::make_mut(t).disabled = *disabled;
            Ok(true)
        }
        CatalogOp::CreateToken(record) => {
            crate::tokens::check_name(&record.name).map_err(CatalogError::InvalidName)?;
            if cat.tokens.contains_key(&record.name) {
                return Err(CatalogError::TokenExists(record.name.clone()));
            }
            let id = cat.next_token_id;
            cat.next_token_id += 1;
            cat.tokens.insert(record.name.clone(), Arc::new(TokenRecord { id, ..record.clone() }));
            Ok(true)
        }
        CatalogOp::RehashToken { name, hash } => {
            let t = cat.tokens.get_mut(name).ok_or_else(|| CatalogError::TokenNotFound(name.clone()))?;
            Arc::make_mut(t).hash = hash.clone();
            Ok(true)
        }
        CatalogOp::DeleteToken(name) => {
            if name == crate::tokens::OPERATOR_TOKEN_NAME {
                return Err(CatalogError::OperatorToken("the operator token cannot be deleted; regenerate it instead".into()));
            }
            cat.tokens.remove(name).ok_or_else(|| CatalogError::TokenNotFound(name.clone()))?;
            Ok(true)
        }
    }
}

fn db_mut<'a>(cat: &'a mut CatalogSnapshot, db: &str) -> Result<&'a mut Arc<Database>, CatalogError> {
    cat.databases.get_mut(db).ok_or_else(|| CatalogError::DatabaseNotFound(db.to_string()))
}

fn persist(path: &Path, snapshot: &CatalogSnapshot) -> Result<(), CatalogError> {
    use std::io::Write;
    let bytes = serde_json::to_vec_pretty(snapshot).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newer_of_the_local_catalog_and_the_object_store_copy_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        cat.update(&[CatalogOp::CreateDatabase { name: "a".into(), retention_ns: None }]).unwrap();
        let v1 = (*cat.snapshot()).clone();
        cat.update(&[CatalogOp::CreateDatabase { name: "b".into(), retention_ns: None }]).unwrap();
        let v2 = (*cat.snapshot()).clone();
        drop(cat);
        // An older copy never wins over the local file.
        let again = Catalog::open_seeded(dir.path(), Some(v1.clone())).unwrap().snapshot();
        assert_eq!(again.version, v2.version);
        // A lost local disk starts from the copy, and keeps it.
        let empty = tempfile::tempdir().unwrap();
        let seeded = Catalog::open_seeded(empty.path(), Some(v2.clone())).unwrap().snapshot();
        assert!(seeded.db("b").is_some());
        assert_eq!(Catalog::open(empty.path()).unwrap().snapshot().version, v2.version);
        // A newer copy replaces a stale local file.
        let stale = tempfile::tempdir().unwrap();
        Catalog::open_seeded(stale.path(), Some(v1)).unwrap();
        assert!(Catalog::open_seeded(stale.path(), Some(v2)).unwrap().snapshot().db("b").is_some());
    }

    fn cols(list: &[(&str, ColumnKind)]) -> Vec<Column> {
        list.iter().map(|(n, k)| Column { name: n.to_string(), kind: *k }).collect()
    }

    #[test]
    fn persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        cat.update(&[
            CatalogOp::EnsureDatabase("db".into()),
            CatalogOp::EnsureColumns {
                db: "db".into(),
                table: "cpu".into(),
                columns: cols(&[("host", ColumnKind::Tag), ("u", ColumnKind::Field(FieldType::Float))]),
            },
        ])
        .unwrap();
        let again = Catalog::open(dir.path()).unwrap().snapshot();
        let t = again.db("db").unwrap().table("cpu").unwrap();
        assert_eq!(t.columns.len(), 3);
        assert_eq!(t.column("u").unwrap().kind, ColumnKind::Field(FieldType::Float));
        assert_eq!(again.version, 1);
    }

    #[test]
    fn column_type_is_fixed_by_first_write() {
        let cat = Catalog::in_memory();
        let add = |k| CatalogOp::EnsureColumns { db: "d".into(), table: "t".into(), columns: cols(&[("f", k)]) };
        cat.update(&[CatalogOp::EnsureDatabase("d".into()), add(ColumnKind::Field(FieldType::Integer))]).unwrap();
        let e = cat.update(&[add(ColumnKind::Field(FieldType::Float))]).unwrap_err();
        assert!(matches!(e, CatalogError::ColumnConflict { .. }), "{e}");
        // A failed update publishes nothing.
        assert_eq!(cat.snapshot().version, 1);
    }

    #[test]
    fn unchanged_update_writes_no_version() {
        let cat = Catalog::in_memory();
        cat.update(&[CatalogOp::EnsureDatabase("d".into())]).unwrap();
        cat.update(&[CatalogOp::EnsureDatabase("d".into())]).unwrap();
        assert_eq!(cat.snapshot().version, 1);
    }

    #[test]
    fn deleted_database_id_is_never_reused() {
        let cat = Catalog::in_memory();
        cat.update(&[CatalogOp::CreateDatabase { name: "a".into(), retention_ns: None }]).unwrap();
        let first = cat.snapshot().db("a").unwrap().id;
        cat.update(&[CatalogOp::DeleteDatabase("a".into())]).unwrap();
        cat.update(&[CatalogOp::CreateDatabase { name: "a".into(), retention_ns: None }]).unwrap();
        assert_ne!(cat.snapshot().db("a").unwrap().id, first);
    }

    #[test]
    fn triggers_persist_and_disable_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let t = Trigger {
            name: "t".into(),
            plugin_filename: "p.py".into(),
            specification: "all_tables".into(),
            arguments: Some([("k".to_string(), "v".to_string())].into()),
            run_async: false,
            error_behavior: ErrorBehavior::Disable,
            disabled: false,
            timeout_ms: None,
            memory_limit_bytes: None,
        };
        cat.update(&[CatalogOp::CreateDatabase { name: "d".into(), retention_ns: None }, CatalogOp::CreateTrigger { db: "d".into(), trigger: t.clone() }])
            .unwrap();
        let e = cat.update(&[CatalogOp::CreateTrigger { db: "d".into(), trigger: t.clone() }]).unwrap_err();
        assert!(matches!(e, CatalogError::TriggerExists(_)), "{e}");
        let off = CatalogOp::SetTriggerDisabled { db: "d".into(), name: "t".into(), disabled: true };
        cat.update(std::slice::from_ref(&off)).unwrap();
        let v = cat.snapshot().version;
        cat.update(&[off]).unwrap();
        assert_eq!(cat.snapshot().version, v, "disabling twice writes nothing");
        let again = Catalog::open(dir.path()).unwrap().snapshot();
        let got = again.db("d").unwrap().triggers.get("t").unwrap();
        assert!(got.disabled);
        assert_eq!(got.arguments, t.arguments);
    }

    #[test]
    fn rejects_bad_database_names() {
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(validate_db_name(bad).is_err(), "{bad}");
        }
        validate_db_name("my_db-1").unwrap();
    }

    #[test]
    fn a_table_remembers_the_commit_it_was_made_at() {
        let cat = Catalog::in_memory();
        let commits = Arc::new(AtomicU64::new(41));
        cat.use_commit_counter(commits.clone());
        let add = CatalogOp::EnsureColumns { db: "d".into(), table: "t".into(), columns: vec![] };
        cat.update(&[CatalogOp::EnsureDatabase("d".into()), add.clone()]).unwrap();
        assert_eq!(cat.snapshot().db("d").unwrap().table("t").unwrap().created_commit, 41);
        commits.store(50, std::sync::atomic::Ordering::Release);
        cat.update(&[CatalogOp::DeleteTable { db: "d".into(), table: "t".into() }, add]).unwrap();
        assert_eq!(cat.snapshot().db("d").unwrap().table("t").unwrap().created_commit, 50);
    }
}
