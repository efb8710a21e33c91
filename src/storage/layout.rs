//! Where files go in the object store: `NODE/dbs/DB-ID/TABLE-ID/YYYY-MM-DD/HH-MM/N.parquet`,
//! as InfluxDB 3 lays them out. Ids keep a database or table created again under an old name
//! apart from the deleted one; every part is escaped by `object_store`, so a table named
//! `a/b` is one directory.

use object_store::path::Path;

/// The path of Parquet file `id` of a table, for the window starting at `window_ns`.
pub fn file_path(node: &str, db: (&str, u32), table: (&str, u32), window_ns: i64, id: u64) -> Path {
    let start = chrono::DateTime::from_timestamp_nanos(window_ns);
    Path::from_iter([
        node.to_string(),
        "dbs".to_string(),
        format!("{}-{}", db.0, db.1),
        format!("{}-{}", table.0, table.1),
        start.format("%Y-%m-%d").to_string(),
        start.format("%H-%M").to_string(),
        format!("{id:010}.parquet"),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_laid_out_by_database_table_and_window() {
        let p = file_path("n", ("db", 1), ("cpu/x", 2), 1_700_000_000_000_000_000, 7);
        assert_eq!(p.as_ref(), "n/dbs/db-1/cpu%2Fx-2/2023-11-14/22-13/0000000007.parquet");
    }
}
