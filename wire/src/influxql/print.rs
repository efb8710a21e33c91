//! InfluxQL statements written back as text that parses to the same statement: names always
//! double-quoted, strings single-quoted, regexes between slashes, every binary expression in
//! parentheses, floats with a decimal point, durations in nanoseconds. For error messages and
//! logs, and for the parser's round-trip property test.

use std::fmt::{self, Display, Formatter, Write};

use super::ast::*;

fn quoted(f: &mut Formatter<'_>, name: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in name.chars() {
        if c == '"' || c == '\\' {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('"')
}

fn string(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('\'')?;
    for c in s.chars() {
        match c {
            '\'' | '\\' => {
                f.write_char('\\')?;
                f.write_char(c)?;
            }
            '\n' => f.write_str("\\n")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('\'')
}

fn regex(f: &mut Formatter<'_>, re: &str) -> fmt::Result {
    f.write_char('/')?;
    f.write_str(&re.replace('/', "\\/"))?;
    f.write_char('/')
}

/// A float InfluxQL reads back as the same float: always with a decimal point.
fn float(f: &mut Formatter<'_>, x: f64) -> fmt::Result {
    let text = format!("{x:?}");
    match text.split_once('e') {
        Some((m, e)) if !m.contains('.') => write!(f, "{m}.0e{e}"),
        _ => f.write_str(&text),
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Var(v) => quoted(f, v),
            Expr::Wildcard => f.write_char('*'),
            Expr::Integer(n) => write!(f, "{n}"),
            Expr::Float(x) => float(f, *x),
            Expr::Str(s) => string(f, s),
            Expr::Bool(b) => write!(f, "{b}"),
            Expr::Regex(re) => regex(f, re),
            Expr::Duration(d) => write!(f, "{d}ns"),
            Expr::Now => f.write_str("now()"),
            Expr::Call { name, args } => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_char(')')
            }
            Expr::Binary { op, left, right } => write!(f, "({left} {op} {right})"),
            Expr::Neg(e) => write!(f, "-({e})"),
        }
    }
}

impl Display for BinOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Eq => "=",
            BinOp::NotEq => "!=",
            BinOp::Lt => "<",
            BinOp::LtEq => "<=",
            BinOp::Gt => ">",
            BinOp::GtEq => ">=",
            BinOp::RegexMatch => "=~",
            BinOp::RegexNotMatch => "!~",
            BinOp::And => "AND",
            BinOp::Or => "OR",
        })
    }
}

impl Display for NameFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            NameFilter::Eq(n) => {
                f.write_str("= ")?;
                quoted(f, n)
            }
            NameFilter::NotEq(n) => {
                f.write_str("!= ")?;
                quoted(f, n)
            }
            NameFilter::Regex(r) => {
                f.write_str("=~ ")?;
                regex(f, r)
            }
            NameFilter::NotRegex(r) => {
                f.write_str("!~ ")?;
                regex(f, r)
            }
            NameFilter::In(names) => {
                f.write_str("IN (")?;
                for (i, n) in names.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    quoted(f, n)?;
                }
                f.write_char(')')
            }
        }
    }
}

fn from(f: &mut Formatter<'_>, m: &Option<String>) -> fmt::Result {
    if let Some(m) = m {
        f.write_str(" FROM ")?;
        quoted(f, m)?;
    }
    Ok(())
}

impl Display for Select {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", field.expr)?;
            if let Some(a) = &field.alias {
                f.write_str(" AS ")?;
                quoted(f, a)?;
            }
        }
        f.write_str(" FROM ")?;
        quoted(f, &self.from)?;
        if let Some(c) = &self.condition {
            write!(f, " WHERE {c}")?;
        }
        let mut dims: Vec<String> = Vec::new();
        if let Some((every, offset)) = self.group_time {
            dims.push(if offset == 0 { format!("time({every}ns)") } else { format!("time({every}ns, {offset}ns)") });
        }
        for t in &self.group_tags {
            dims.push(Expr::Var(t.clone()).to_string());
        }
        if self.group_all_tags {
            dims.push("*".into());
        }
        if !dims.is_empty() {
            write!(f, " GROUP BY {}", dims.join(", "))?;
        }
        match self.fill {
            Fill::Null => {}
            Fill::None => f.write_str(" fill(none)")?,
            Fill::Previous => f.write_str(" fill(previous)")?,
            Fill::Linear => f.write_str(" fill(linear)")?,
            Fill::Value(v) => {
                f.write_str(" fill(")?;
                float(f, v)?;
                f.write_char(')')?;
            }
        }
        if self.descending {
            f.write_str(" ORDER BY time DESC")?;
        }
        for (word, v) in [("LIMIT", self.limit), ("OFFSET", self.offset), ("SLIMIT", self.slimit), ("SOFFSET", self.soffset)] {
            if let Some(n) = v {
                write!(f, " {word} {n}")?;
            }
        }
        Ok(())
    }
}

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Statement::Select(s) => write!(f, "{s}"),
            Statement::ShowDatabases => f.write_str("SHOW DATABASES"),
            Statement::ShowMeasurements { filter, limit } => {
                f.write_str("SHOW MEASUREMENTS")?;
                if let Some(filter) = filter {
                    write!(f, " WITH MEASUREMENT {filter}")?;
                }
                if let Some(n) = limit {
                    write!(f, " LIMIT {n}")?;
                }
                Ok(())
            }
            Statement::ShowTagKeys { from: m } => {
                f.write_str("SHOW TAG KEYS")?;
                from(f, m)
            }
            Statement::ShowTagValues { from: m, keys, condition } => {
                f.write_str("SHOW TAG VALUES")?;
                from(f, m)?;
                write!(f, " WITH KEY {keys}")?;
                if let Some(c) = condition {
                    write!(f, " WHERE {c}")?;
                }
                Ok(())
            }
            Statement::ShowFieldKeys { from: m } => {
                f.write_str("SHOW FIELD KEYS")?;
                from(f, m)
            }
            Statement::ShowSeries { from: m } => {
                f.write_str("SHOW SERIES")?;
                from(f, m)
            }
            Statement::ShowRetentionPolicies => f.write_str("SHOW RETENTION POLICIES"),
            Statement::CreateDatabase(n) => {
                f.write_str("CREATE DATABASE ")?;
                quoted(f, n)
            }
            Statement::DropDatabase(n) => {
                f.write_str("DROP DATABASE ")?;
                quoted(f, n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::influxql::parser::parse;

    fn name() -> impl Strategy<Value = String> {
        // Any text, quotes and backslashes included: names are always printed quoted.
        "[a-zA-Z_\"\\\\ .,=-]{1,8}"
    }

    fn leaf() -> impl Strategy<Value = Expr> {
        prop_oneof![
            name().prop_map(Expr::Var),
            (-1_000_000i64..1_000_000).prop_map(Expr::Integer),
            (-1e12f64..1e12).prop_filter("finite", |x| x.is_finite()).prop_map(Expr::Float),
            "[a-z '\\\\\n]{0,6}".prop_map(Expr::Str),
            any::<bool>().prop_map(Expr::Bool),
            (0i64..1_000_000_000_000).prop_map(Expr::Duration),
            Just(Expr::Now),
        ]
    }

    fn expr() -> impl Strategy<Value = Expr> {
        leaf().prop_recursive(4, 24, 3, |inner| {
            let ops = prop_oneof![
                Just(BinOp::Add),
                Just(BinOp::Sub),
                Just(BinOp::Mul),
                Just(BinOp::Div),
                Just(BinOp::Eq),
                Just(BinOp::NotEq),
                Just(BinOp::Lt),
                Just(BinOp::LtEq),
                Just(BinOp::Gt),
                Just(BinOp::GtEq),
                Just(BinOp::And),
                Just(BinOp::Or),
            ];
            prop_oneof![
                (ops, inner.clone(), inner.clone()).prop_map(|(op, l, r)| Expr::Binary { op, left: Box::new(l), right: Box::new(r) }),
                (name(), "[a-z.*^$/]{1,6}").prop_map(|(v, re)| Expr::Binary {
                    op: BinOp::RegexMatch,
                    left: Box::new(Expr::Var(v)),
                    right: Box::new(Expr::Regex(re)),
                }),
                ("(mean|max|count|derivative|percentile)", prop::collection::vec(inner.clone(), 1..3))
                    .prop_map(|(name, args)| Expr::Call { name, args }),
                name().prop_map(|v| Expr::Neg(Box::new(Expr::Var(v)))),
            ]
        })
    }

    fn select() -> impl Strategy<Value = Select> {
        let fill = prop_oneof![
            Just(Fill::Null),
            Just(Fill::None),
            Just(Fill::Previous),
            Just(Fill::Linear),
            (-1e6f64..1e6).prop_map(Fill::Value),
        ];
        let limits = (
            prop::option::of(0u64..1000),
            prop::option::of(0u64..1000),
            prop::option::of(0u64..1000),
            prop::option::of(0u64..1000),
        );
        (
            prop::collection::vec((expr(), prop::option::of(name())), 1..4),
            name(),
            prop::option::of(expr()),
            prop::option::of((1i64..1_000_000_000_000, -1_000_000_000i64..1_000_000_000)),
            prop::collection::vec(name(), 0..3),
            any::<bool>(),
            fill,
            any::<bool>(),
            limits,
        )
            .prop_map(|(fields, from, condition, group_time, group_tags, group_all_tags, fill, descending, (limit, offset, slimit, soffset))| Select {
                fields: fields.into_iter().map(|(expr, alias)| Field { expr, alias }).collect(),
                from,
                condition,
                group_time,
                group_tags,
                group_all_tags,
                fill,
                descending,
                limit,
                offset,
                slimit,
                soffset,
            })
    }

    fn statement() -> impl Strategy<Value = Statement> {
        let filter = prop_oneof![
            name().prop_map(NameFilter::Eq),
            name().prop_map(NameFilter::NotEq),
            "[a-z.*^$/]{1,6}".prop_map(NameFilter::Regex),
            "[a-z.*^$/]{1,6}".prop_map(NameFilter::NotRegex),
            prop::collection::vec(name(), 1..3).prop_map(NameFilter::In),
        ];
        prop_oneof![
            select().prop_map(|s| Statement::Select(Box::new(s))),
            Just(Statement::ShowDatabases),
            (prop::option::of(filter.clone()), prop::option::of(0u64..100)).prop_map(|(filter, limit)| Statement::ShowMeasurements { filter, limit }),
            prop::option::of(name()).prop_map(|from| Statement::ShowTagKeys { from }),
            (prop::option::of(name()), filter, prop::option::of(expr()))
                .prop_map(|(from, keys, condition)| Statement::ShowTagValues { from, keys, condition }),
            prop::option::of(name()).prop_map(|from| Statement::ShowFieldKeys { from }),
            prop::option::of(name()).prop_map(|from| Statement::ShowSeries { from }),
            Just(Statement::ShowRetentionPolicies),
            name().prop_map(Statement::CreateDatabase),
            name().prop_map(Statement::DropDatabase),
        ]
    }

    proptest! {
        /// Whatever statement the parser can build, printed, parses back to itself.
        #[test]
        fn printed_statements_parse_back_to_themselves(stmt in statement()) {
            let text = stmt.to_string();
            let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(parsed, vec![stmt], "{}", text);
        }
    }
}
