//! SQL text the server and the CLI build for themselves (InfluxQL's plans, `SHOW` answers,
//! replays, `weir show system`): a name or a string quoted so that any text stays one token.
//!
//! It only quotes; it never runs anything.

/// A name (table, column) as a SQL identifier: double-quoted, `"` doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string as a SQL literal: single-quoted, `'` doubled.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_strings_stay_one_token() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}
