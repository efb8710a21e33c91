//! Validating a write: from a line-protocol body to lines that fit the catalog.
//!
//! Owns the per-line rules beyond the grammar: timestamp precision, reserved and duplicate
//! column names, and a column's type being fixed by the first write (a conflicting line is an
//! error for that line alone). New tables and columns are made durable in the catalog here,
//! before any WAL record can depend on them. It never writes row data anywhere.

// Shard code: no call here may block the thread (clippy.toml lists the calls).
#![deny(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::Arc;

use crate::catalog::{Catalog, CatalogError, CatalogOp, CatalogSnapshot, Column, ColumnKind, FieldType, Table};
use crate::lp::{parse_lines, FieldValue, ParsedLine, SeriesId};

/// Timestamp precision of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Guess from the magnitude of each timestamp (InfluxDB 3's `auto`).
    Auto,
    Nanosecond,
    Microsecond,
    Millisecond,
    Second,
}

impl Precision {
    /// Parses any spelling the v1, v2 and v3 write APIs accept.
    pub fn parse(s: &str) -> Option<Precision> {
        Some(match s {
            "auto" => Precision::Auto,
            "n" | "ns" | "nanosecond" => Precision::Nanosecond,
            "u" | "us" | "µ" | "microsecond" => Precision::Microsecond,
            "ms" | "millisecond" => Precision::Millisecond,
            "s" | "second" => Precision::Second,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        match self {
            Precision::Auto => 0,
            Precision::Nanosecond => 1,
            Precision::Microsecond => 2,
            Precision::Millisecond => 3,
            Precision::Second => 4,
        }
    }

    pub fn from_code(c: u8) -> Option<Precision> {
        Some(match c {
            0 => Precision::Auto,
            1 => Precision::Nanosecond,
            2 => Precision::Microsecond,
            3 => Precision::Millisecond,
            4 => Precision::Second,
            _ => return None,
        })
    }

    /// Converts a timestamp to nanoseconds; `None` if it overflows.
    pub fn to_ns(self, ts: i64) -> Option<i64> {
        let p = match self {
            Precision::Auto => guess_precision(ts),
            p => p,
        };
        match p {
            Precision::Nanosecond | Precision::Auto => Some(ts),
            Precision::Microsecond => ts.checked_mul(1_000),
            Precision::Millisecond => ts.checked_mul(1_000_000),
            Precision::Second => ts.checked_mul(1_000_000_000),
        }
    }
}

/// InfluxDB 3's rule: the magnitude tells the unit (a timestamp in seconds is < 5e9 until 2128).
fn guess_precision(ts: i64) -> Precision {
    let v = ts.unsigned_abs();
    if v < 5_000_000_000 {
        Precision::Second
    } else if v < 5_000_000_000_000 {
        Precision::Millisecond
    } else if v < 5_000_000_000_000_000 {
        Precision::Microsecond
    } else {
        Precision::Nanosecond
    }
}

/// A line that was refused, as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineReject {
    pub line_number: usize,
    pub original_line: String,
    pub error_message: String,
}

/// A line that fits the catalog, with its time resolved to nanoseconds. (While `prepare` runs,
/// the lines waiting for the catalog's type check have this shape too, so that the good ones
/// become the answer where they lie: moving every line from one vector to another was a copy
/// of ~150 bytes a line.)
#[derive(Debug)]
pub struct GoodLine<'a> {
    /// 1-based, as the body numbers it.
    pub line_number: usize,
    pub text: &'a [u8],
    pub line: ParsedLine<'a>,
    pub time_ns: i64,
    /// The line's table: its place in [`PreparedWrite::tables`]. (An index, not an `Arc`: a
    /// clone a line was an atomic increment and decrement on a count every shard writing
    /// the table shares.)
    pub table: usize,
    /// Same measurement, keys (in order) and field types as the good line before it in this
    /// write, so it goes to the same table right after that line. Worked out as the line is
    /// parsed ([`same_shape`]); the line shares that line's verdicts.
    pub same_shape: bool,
    /// The parser's number for the line's series in this body ([`crate::lp::Item::series_id`]).
    pub series_id: Option<SeriesId>,
}

/// The outcome of validation: lines to write and lines refused.
#[derive(Debug)]
pub struct PreparedWrite<'a> {
    pub db_id: u32,
    pub db_name: String,
    pub good: Vec<GoodLine<'a>>,
    /// The tables the good lines go to, each once.
    pub tables: Vec<Arc<Table>>,
    pub rejects: Vec<LineReject>,
}

impl PreparedWrite<'_> {
    /// A write of no line to `db`, with the lines it refused.
    fn nothing(db: &str, rejects: Vec<LineReject>) -> Self {
        PreparedWrite { db_id: 0, db_name: db.to_string(), good: Vec::new(), tables: Vec::new(), rejects }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Most columns a table may have, `time` included (InfluxDB 3 Core's limit). A line that would
/// take its table past it is refused: without a bound, one line of 100,000 tags made a catalog
/// of 17 MiB and held its shard for most of a minute.
pub const MAX_COLUMNS_PER_TABLE: usize = 500;

/// Most tags one line may carry (InfluxDB 3 Core keeps at most 250 tag columns per table).
pub const MAX_TAGS_PER_LINE: usize = 250;

/// Longest line accepted, in bytes. Refused lines are echoed back cut to [`ECHO_BYTES`].
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// How much of a refused line's text the answer repeats.
const ECHO_BYTES: usize = 1024;

/// Validates `body` for database `db`, creating the database, tables and columns it needs.
///
/// With `accept_partial == false` and any bad line, nothing is created and `good` is empty.
pub fn prepare<'a>(
    catalog: &Catalog,
    db: &str,
    body: &'a [u8],
    precision: Precision,
    default_time_ns: i64,
    accept_partial: bool,
) -> Result<PreparedWrite<'a>, PrepareError> {
    crate::catalog::validate_db_name(db)?;
    let mut rejects = Vec::new();
    // One slot a newline (an upper bound): growing this by doubling copied it several times.
    let mut lines = Vec::with_capacity(memchr::memchr_iter(b'\n', body).count() + 1);
    for item in parse_lines(body) {
        let reject = |msg: String| LineReject {
            line_number: item.line_number,
            original_line: String::from_utf8_lossy(&item.text[..item.text.len().min(ECHO_BYTES)]).into_owned(),
            error_message: msg,
        };
        if item.text.len() > MAX_LINE_BYTES {
            rejects.push(reject(format!("the line is {} bytes long, more than the limit of {MAX_LINE_BYTES}", item.text.len())));
            continue;
        }
        let line = match item.parsed {
            Ok(l) => l,
            Err(e) => {
                rejects.push(reject(e));
                continue;
            }
        };
        // Lines of one body nearly always repeat the previous line's shape; its names passed.
        let repeats = lines.last().is_some_and(|prev: &GoodLine<'_>| same_shape(&prev.line, &line));
        if !repeats {
            if line.tags.len() > MAX_TAGS_PER_LINE {
                rejects.push(reject(format!("the line has {} tags, more than the limit of {MAX_TAGS_PER_LINE}", line.tags.len())));
                continue;
            }
            let columns = line.tags.len() + line.fields.len() + 1;
            if columns > MAX_COLUMNS_PER_TABLE {
                rejects.push(reject(format!(
                    "the line has {} tags and fields, but a table holds at most {MAX_COLUMNS_PER_TABLE} columns, time included",
                    columns - 1
                )));
                continue;
            }
            if let Err(e) = check_names(&line) {
                rejects.push(reject(e));
                continue;
            }
        }
        let time_ns = match line.timestamp {
            None => default_time_ns,
            Some(ts) => match precision.to_ns(ts) {
                Some(t) => t,
                None => {
                    rejects.push(reject(format!("timestamp {ts} overflows nanoseconds")));
                    continue;
                }
            },
        };
        lines.push(GoodLine {
            line_number: item.line_number,
            text: item.text,
            line,
            time_ns,
            table: 0, // set once the line is known to be good
            same_shape: repeats,
            series_id: item.series_id,
        });
    }

    // Check types against the catalog; a catalog update can race another shard's, so on a
    // conflict the check is redone against the newer snapshot (bounded).
    let mut snapshot = catalog.snapshot();
    for _attempt in 0..4 {
        let (typed_rejects, new_columns) = check_types(&snapshot, db, &lines);
        let all_rejects = rejects.iter().cloned().chain(typed_rejects.iter().map(|(i, msg)| {
            let l = &lines[*i];
            LineReject { line_number: l.line_number, original_line: String::from_utf8_lossy(l.text).into_owned(), error_message: msg.clone() }
        }));
        let mut all_rejects: Vec<LineReject> = all_rejects.collect();
        all_rejects.sort_by_key(|r| r.line_number);
        if !accept_partial && !all_rejects.is_empty() {
            return Ok(PreparedWrite::nothing(db, all_rejects));
        }
        let good_count = lines.len() - typed_rejects.len();
        if good_count > 0 && (snapshot.db(db).is_none() || !new_columns.is_empty()) {
            let mut ops = vec![CatalogOp::EnsureDatabase(db.to_string())];
            let mut by_table: HashMap<&str, Vec<Column>> = HashMap::new();
            for ((table, col), kind) in &new_columns {
                by_table.entry(table.as_str()).or_default().push(Column { name: col.clone(), kind: *kind });
            }
            for (table, columns) in by_table {
                ops.push(CatalogOp::EnsureColumns { db: db.to_string(), table: table.to_string(), columns });
            }
            snapshot = match catalog.update(&ops) {
                Ok(s) => s,
                Err(CatalogError::ColumnConflict { .. }) => catalog.snapshot(),
                Err(e) => return Err(e.into()),
            };
            continue; // re-check against the snapshot that now holds the new columns
        }
        let Some(dbm) = snapshot.db(db).cloned() else {
            return Ok(PreparedWrite::nothing(db, all_rejects));
        };
        // `typed_rejects` is in line order, so one cursor walks it.
        let mut rejected = typed_rejects.iter().map(|(i, _)| *i).peekable();
        let mut tables: Vec<Arc<Table>> = Vec::new();
        // The table of the last good line: the next one usually has the same.
        let mut last: Option<usize> = None;
        let mut at = 0;
        let mut good = lines;
        good.retain_mut(|g| {
            let i = at;
            at += 1;
            if rejected.next_if_eq(&i).is_some() {
                return false;
            }
            let table = match last {
                Some(t) if crate::name_eq::same_name(&tables[t].name, &g.line.measurement) => t,
                _ => match dbm.table(&g.line.measurement) {
                    Some(t) => match tables.iter().position(|known| known.id == t.id) {
                        Some(k) => k,
                        None => {
                            tables.push(t.clone());
                            tables.len() - 1
                        }
                    },
                    None => return false, // unreachable: the table was just ensured
                },
            };
            g.table = table;
            last = Some(table);
            true
        });
        debug_assert_eq!(good.len(), good_count);
        return Ok(PreparedWrite { db_id: dbm.id, db_name: db.to_string(), good, tables, rejects: all_rejects });
    }
    Err(PrepareError::Catalog(CatalogError::Corrupt("catalog kept changing under a write; try again".into())))
}

fn check_names(line: &ParsedLine<'_>) -> Result<(), String> {
    let mut seen: Vec<&str> = Vec::with_capacity(line.tags.len() + line.fields.len());
    let keys = line.tags.iter().map(|(k, _)| k.as_ref()).chain(line.fields.iter().map(|(k, _)| k.as_ref()));
    for k in keys {
        if k == "time" {
            return Err("'time' is reserved and cannot be a tag or field name".into());
        }
        if seen.contains(&k) {
            return Err(format!("column '{k}' appears more than once in the line"));
        }
        seen.push(k);
    }
    Ok(())
}

pub fn field_type(v: &FieldValue<'_>) -> FieldType {
    match v {
        FieldValue::Float(_) => FieldType::Float,
        FieldValue::Integer(_) => FieldType::Integer,
        FieldValue::UInteger(_) => FieldType::UInteger,
        FieldValue::String(_) => FieldType::String,
        FieldValue::Boolean(_) => FieldType::Boolean,
    }
}

type NewColumns = HashMap<(String, String), ColumnKind>;

/// Returns (index of bad line, reason) pairs and the columns the good lines add.
fn check_types(
    snapshot: &CatalogSnapshot,
    db: &str,
    lines: &[GoodLine<'_>],
) -> (Vec<(usize, String)>, NewColumns) {
    let dbm = snapshot.db(db);
    let mut rejects = Vec::new();
    let mut new_columns: NewColumns = HashMap::new();
    let mut line_new: Vec<((String, String), ColumnKind)> = Vec::new();
    // Columns this body adds, per table so far.
    let mut added: HashMap<String, usize> = HashMap::new();
    // The verdict on the previous line: a line that repeats its shape gets the same one (its
    // new columns, if any, were recorded by that line).
    let mut verdict: Option<String> = None;
    for (i, GoodLine { line, same_shape: repeats, .. }) in lines.iter().enumerate() {
        if *repeats {
            if let Some(msg) = &verdict {
                rejects.push((i, msg.clone()));
            }
            continue;
        }
        let table = dbm.and_then(|d| d.table(&line.measurement));
        line_new.clear();
        let cols = line
            .tags
            .iter()
            .map(|(k, _)| (k.as_ref(), ColumnKind::Tag))
            .chain(line.fields.iter().map(|(k, v)| (k.as_ref(), ColumnKind::Field(field_type(v)))));
        let mut conflict = None;
        for (name, kind) in cols {
            let existing = table
                .and_then(|t| t.column(name).map(|c| c.kind))
                .or_else(|| new_columns.get(&(line.measurement.to_string(), name.to_string())).copied());
            match existing {
                Some(k) if k == kind => {}
                Some(k) => {
                    conflict = Some(format!(
                        "column '{name}' of table '{}' was first written as {}, but this line writes it as {}",
                        line.measurement,
                        k.describe(),
                        kind.describe()
                    ));
                    break;
                }
                None => line_new.push(((line.measurement.to_string(), name.to_string()), kind)),
            }
        }
        if conflict.is_none() && !line_new.is_empty() {
            let have = table.map_or(1, |t| t.columns.len()) + added.get(line.measurement.as_ref()).copied().unwrap_or(0);
            if have + line_new.len() > MAX_COLUMNS_PER_TABLE {
                conflict = Some(format!(
                    "table '{}' has {have} columns and this line adds {}: more than the limit of {MAX_COLUMNS_PER_TABLE}",
                    line.measurement,
                    line_new.len()
                ));
            }
        }
        match &conflict {
            Some(msg) => rejects.push((i, msg.clone())),
            None => {
                *added.entry(line.measurement.to_string()).or_default() += line_new.len();
                for (k, v) in line_new.drain(..) {
                    new_columns.insert(k, v);
                }
            }
        }
        verdict = conflict;
    }
    (rejects, new_columns)
}

/// Same measurement, same keys in the same order, same field types: whatever the catalog and
/// the naming rules say of one line, they say of the other.
fn same_shape(a: &ParsedLine<'_>, b: &ParsedLine<'_>) -> bool {
    use crate::name_eq::same_name;
    same_name(&a.measurement, &b.measurement)
        && a.fields.len() == b.fields.len()
        && (std::rc::Rc::ptr_eq(&a.tags, &b.tags)
            || (a.tags.len() == b.tags.len() && a.tags.iter().zip(b.tags.iter()).all(|((x, _), (y, _))| same_name(x, y))))
        && a.fields.iter().zip(&b.fields).all(|((x, u), (y, v))| same_name(x, y) && std::mem::discriminant(u) == std::mem::discriminant(v))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn type_conflict_is_per_line() {
        let cat = Catalog::in_memory();
        let body = b"cpu f=1i 1\ncpu f=1.5 2\ncpu f=2i 3\n";
        let p = prepare(&cat, "db", body, Precision::Nanosecond, 0, true).unwrap();
        assert_eq!(p.good.len(), 2);
        assert_eq!(p.rejects.len(), 1);
        assert_eq!(p.rejects[0].line_number, 2);
        assert!(p.rejects[0].error_message.contains("integer field"), "{}", p.rejects[0].error_message);
        let snap = cat.snapshot();
        assert_eq!(snap.db("db").unwrap().table("cpu").unwrap().column("f").unwrap().kind, ColumnKind::Field(FieldType::Integer));
    }

    #[test]
    fn a_table_holds_at_most_its_column_limit_and_only_the_line_past_it_is_refused() {
        let cat = Catalog::in_memory();
        let fields = |from: usize, n: usize| (from..from + n).map(|i| format!("f{i}=1")).collect::<Vec<_>>().join(",");
        // 498 fields and time: 499 columns, fine; one more line adds two, past 500.
        let body = format!("t {} 1\nt {} 2\nt f0=2 3\n", fields(0, 498), fields(498, 2));
        let p = prepare(&cat, "db", body.as_bytes(), Precision::Nanosecond, 0, true).unwrap();
        assert_eq!(p.good.len(), 2);
        assert_eq!(p.rejects.len(), 1);
        assert_eq!(p.rejects[0].line_number, 2);
        assert!(p.rejects[0].error_message.contains("limit of 500"), "{}", p.rejects[0].error_message);
        assert_eq!(cat.snapshot().db("db").unwrap().table("t").unwrap().columns.len(), 499);
        // A line that could never fit is refused before anything else is looked at.
        let huge: String = (0..100_000).map(|i| format!(",k{i}=v")).collect();
        let line = format!("u{huge} f=1 1\n");
        let p = prepare(&cat, "db", line.as_bytes(), Precision::Nanosecond, 0, true).unwrap();
        assert!(p.good.is_empty() && p.rejects[0].error_message.contains("100000 tags, more than the limit of 250"), "{}", p.rejects[0].error_message);
        assert!(cat.snapshot().db("db").unwrap().table("u").is_none());
        let fields: String = (0..100_000).map(|i| format!("k{i}=1")).collect::<Vec<_>>().join(",");
        let line = format!("u {fields} 1\n");
        let p = prepare(&cat, "db", line.as_bytes(), Precision::Nanosecond, 0, true).unwrap();
        assert!(p.good.is_empty() && p.rejects[0].error_message.contains("100000 tags and fields"), "{}", p.rejects[0].error_message);
    }

    #[test]
    fn accept_partial_false_writes_and_creates_nothing() {
        let cat = Catalog::in_memory();
        let p = prepare(&cat, "db", b"cpu f=1\nbad\n", Precision::Auto, 0, false).unwrap();
        assert!(p.good.is_empty());
        assert_eq!(p.rejects.len(), 1);
        assert!(cat.snapshot().db("db").is_none());
    }

    #[test]
    fn precision_auto_guesses_unit() {
        assert_eq!(Precision::Auto.to_ns(1_700_000_000), Some(1_700_000_000_000_000_000));
        assert_eq!(Precision::Auto.to_ns(1_700_000_000_000), Some(1_700_000_000_000_000_000));
        assert_eq!(Precision::Auto.to_ns(1_700_000_000_000_000), Some(1_700_000_000_000_000_000));
        assert_eq!(Precision::Auto.to_ns(1_700_000_000_000_000_000), Some(1_700_000_000_000_000_000));
        assert_eq!(Precision::Second.to_ns(i64::MAX), None);
    }

    #[test]
    fn reserved_and_duplicate_names_are_rejected() {
        let cat = Catalog::in_memory();
        let p = prepare(&cat, "db", b"m time=1\nm,a=1 a=2\nm f=1,f=2\nm ok=1", Precision::Auto, 0, true).unwrap();
        assert_eq!(p.rejects.iter().map(|r| r.line_number).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(p.good.len(), 1);
    }

    #[test]
    fn repeated_shapes_get_the_same_verdict() {
        // Consecutive lines of one shape share a verdict; each must still be the right one.
        let cat = Catalog::in_memory();
        let body = b"m,h=a f=1i 1\nm,h=b f=1.5 2\nm,h=c f=2.5 3\nm,h=d f=2i 4\nm f=1,f=2 5\nm f=1,f=2 6\nn f=1.5 7\nn f=2.5 8";
        let p = prepare(&cat, "db", body, Precision::Nanosecond, 0, true).unwrap();
        assert_eq!(p.rejects.iter().map(|r| r.line_number).collect::<Vec<_>>(), vec![2, 3, 5, 6]);
        assert!(p.rejects[1].error_message.contains("first written as integer"), "{}", p.rejects[1].error_message);
        assert!(p.rejects[3].error_message.contains("more than once"), "{}", p.rejects[3].error_message);
        let tables: Vec<_> = p.good.iter().map(|g| (p.tables[g.table].name.as_str(), g.time_ns)).collect();
        assert_eq!(tables, vec![("m", 1), ("m", 4), ("n", 7), ("n", 8)]);
    }

    #[test]
    fn missing_timestamp_uses_default_time() {
        let cat = Catalog::in_memory();
        let p = prepare(&cat, "db", b"m f=1", Precision::Auto, 42, true).unwrap();
        assert_eq!(p.good[0].time_ns, 42);
    }
}
