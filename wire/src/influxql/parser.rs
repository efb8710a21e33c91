//! A recursive-descent parser for the InfluxQL that dashboards and the v1 clients send:
//! `SELECT` with expressions, aggregates, `WHERE`, `GROUP BY time(...)`/tags, `fill`, `ORDER
//! BY time`, `LIMIT`/`OFFSET`/`SLIMIT`/`SOFFSET`; the common `SHOW` statements; `CREATE` and
//! `DROP DATABASE`. Statements are separated by `;`.
//!
//! It only builds the AST ([`super::ast`]); it never looks at data. Errors name the position
//! and what was expected, as InfluxDB's do.

use super::ast::*;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("error parsing query: {message} at position {pos}")]
pub struct ParseError {
    pub message: String,
    pub pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// A `"quoted"` identifier: never a keyword.
    Quoted(String),
    Str(String),
    Int(i64),
    Float(f64),
    Duration(Nanos),
    Op(&'static str),
    Eof,
}

pub struct Parser<'a> {
    src: &'a str,
    pos: usize,
    /// Expressions open around the current one: bounded, so a query of a million `(` is an
    /// error and not a stack overflow of the thread parsing it.
    depth: usize,
    /// The token at `pos`, read ahead (and where it started).
    peeked: Option<(Tok, usize, usize)>,
}

/// Parses one or more `;`-separated statements.
pub fn parse(src: &str) -> Result<Vec<Statement>, ParseError> {
    let mut p = Parser { src, pos: 0, depth: 0, peeked: None };
    let mut out = Vec::new();
    loop {
        while p.eat_op(";")? {}
        if p.peek()? == Tok::Eof {
            break;
        }
        out.push(p.statement()?);
        if p.peek()? != Tok::Eof && !p.eat_op(";")? {
            return Err(p.error("expected ';' or the end of the query"));
        }
    }
    if out.is_empty() {
        return Err(ParseError { message: "the query is empty".into(), pos: 0 });
    }
    Ok(out)
}

/// Deepest nesting of expressions (parentheses, unary minus, function arguments) accepted.
pub const MAX_DEPTH: usize = 100;

/// Keywords that cannot stand as a bare identifier (quote them: `"from"`).
const RESERVED: &[&str] = &["SELECT", "FROM", "WHERE", "GROUP", "BY", "ORDER", "LIMIT", "OFFSET", "SLIMIT", "SOFFSET", "AND", "OR", "AS"];

fn duration_unit(unit: &str) -> Option<i64> {
    Some(match unit {
        "ns" => 1,
        "u" | "µ" | "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        "w" => 604_800_000_000_000,
        _ => return None,
    })
}

impl<'a> Parser<'a> {
    fn error(&self, message: &str) -> ParseError {
        let pos = self.peeked.as_ref().map_or(self.pos, |p| p.1);
        let found = self.src.get(pos..).and_then(|r| r.split_whitespace().next()).unwrap_or("the end");
        ParseError { message: format!("{message}, found {found}"), pos }
    }

    fn skip_space(&mut self) {
        loop {
            let rest = &self.src[self.pos..];
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with("--") {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if trimmed.starts_with("/*") {
                self.pos += trimmed.find("*/").map_or(trimmed.len(), |i| i + 2);
            } else {
                return;
            }
        }
    }

    fn lex(&mut self) -> Result<(Tok, usize, usize), ParseError> {
        self.skip_space();
        let start = self.pos;
        let rest = &self.src[start..];
        let Some(c) = rest.chars().next() else { return Ok((Tok::Eof, start, start)) };
        let err = |m: &str| ParseError { message: m.to_string(), pos: start };
        if c.is_ascii_alphabetic() || c == '_' {
            let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            return Ok((Tok::Ident(rest[..len].to_string()), start, start + len));
        }
        if c == '"' || c == '\'' {
            let mut out = String::new();
            let mut chars = rest.char_indices().skip(1);
            while let Some((i, ch)) = chars.next() {
                match ch {
                    '\\' => match chars.next() {
                        Some((_, 'n')) => out.push('\n'),
                        Some((_, e)) => out.push(e),
                        None => break,
                    },
                    ch if ch == c => {
                        let tok = if c == '"' { Tok::Quoted(out) } else { Tok::Str(out) };
                        return Ok((tok, start, start + i + 1));
                    }
                    ch => out.push(ch),
                }
            }
            return Err(err("unterminated quoted text"));
        }
        if c.is_ascii_digit() || (c == '.' && rest[1..].starts_with(|d: char| d.is_ascii_digit())) {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            let after = &rest[digits..];
            // A duration: digits and a unit, possibly repeated (1h30m).
            if digits > 0 && after.starts_with(|c: char| c.is_alphabetic()) {
                let mut total: i64 = 0;
                let mut at = 0;
                while at < rest.len() {
                    let d = rest[at..].find(|c: char| !c.is_ascii_digit()).map_or(rest.len(), |i| at + i);
                    if d == at {
                        break;
                    }
                    let unit_len = rest[d..].find(|c: char| !c.is_alphabetic() && c != 'µ').unwrap_or(rest.len() - d);
                    let unit = &rest[d..d + unit_len];
                    let Some(mul) = duration_unit(unit) else { return Err(err(&format!("invalid duration unit '{unit}'"))) };
                    let n: i64 = rest[at..d].parse().map_err(|_| err("invalid duration"))?;
                    total = n.checked_mul(mul).and_then(|v| total.checked_add(v)).ok_or_else(|| err("duration out of range"))?;
                    at = d + unit_len;
                }
                return Ok((Tok::Duration(total), start, start + at));
            }
            let len = rest
                .char_indices()
                .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || ((c == 'e' || c == 'E') && i > 0) || ((c == '+' || c == '-') && matches!(rest.as_bytes().get(i.wrapping_sub(1)), Some(b'e' | b'E')))))
                .map_or(rest.len(), |(i, _)| i);
            let text = &rest[..len];
            let tok = if text.contains(['.', 'e', 'E']) {
                Tok::Float(text.parse().map_err(|_| err("invalid number"))?)
            } else {
                match text.parse::<i64>() {
                    Ok(n) => Tok::Int(n),
                    Err(_) => Tok::Float(text.parse().map_err(|_| err("invalid number"))?),
                }
            };
            return Ok((tok, start, start + len));
        }
        for op in ["::", "=~", "!~", "!=", "<>", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "(", ")", ",", ";", "."] {
            if rest.starts_with(op) {
                return Ok((Tok::Op(op), start, start + op.len()));
            }
        }
        Err(err(&format!("unexpected character '{c}'")))
    }

    fn peek(&mut self) -> Result<Tok, ParseError> {
        if self.peeked.is_none() {
            let t = self.lex()?;
            self.peeked = Some(t);
        }
        Ok(self.peeked.as_ref().map(|p| p.0.clone()).unwrap_or(Tok::Eof))
    }

    fn next(&mut self) -> Result<Tok, ParseError> {
        self.peek()?;
        let (t, _, end) = self.peeked.take().unwrap_or((Tok::Eof, self.pos, self.pos));
        self.pos = end;
        Ok(t)
    }

    fn eat_op(&mut self, op: &str) -> Result<bool, ParseError> {
        if matches!(self.peek()?, Tok::Op(o) if o == op) {
            self.next()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn expect_op(&mut self, op: &str) -> Result<(), ParseError> {
        if self.eat_op(op)? {
            Ok(())
        } else {
            Err(self.error(&format!("expected '{op}'")))
        }
    }

    fn is_keyword(&mut self, kw: &str) -> Result<bool, ParseError> {
        Ok(matches!(self.peek()?, Tok::Ident(i) if i.eq_ignore_ascii_case(kw)))
    }

    fn eat_keyword(&mut self, kw: &str) -> Result<bool, ParseError> {
        if self.is_keyword(kw)? {
            self.next()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), ParseError> {
        if self.eat_keyword(kw)? {
            Ok(())
        } else {
            Err(self.error(&format!("expected {kw}")))
        }
    }

    fn ident(&mut self) -> Result<String, ParseError> {
        match self.peek()? {
            Tok::Ident(s) | Tok::Quoted(s) => {
                self.next()?;
                Ok(s)
            }
            _ => Err(self.error("expected an identifier")),
        }
    }

    fn unsigned(&mut self) -> Result<u64, ParseError> {
        match self.peek()? {
            Tok::Int(n) if n >= 0 => {
                self.next()?;
                Ok(n as u64)
            }
            _ => Err(self.error("expected a non-negative integer")),
        }
    }

    /// A regex literal `/.../` at the current position (`\/` escapes a slash).
    fn regex(&mut self) -> Result<String, ParseError> {
        self.peeked = None;
        // Whitespace only: a regex may begin `/*`, which elsewhere opens a comment.
        let rest = &self.src[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
        let rest = &self.src[self.pos..];
        if !rest.starts_with('/') {
            return Err(self.error("expected a regular expression /.../"));
        }
        let mut out = String::new();
        let mut chars = rest.char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, '/')) => out.push('/'),
                    Some((_, e)) => {
                        out.push('\\');
                        out.push(e);
                    }
                    None => break,
                },
                '/' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err(ParseError { message: "unterminated regular expression".into(), pos: self.pos })
    }

    fn statement(&mut self) -> Result<Statement, ParseError> {
        if self.eat_keyword("SELECT")? {
            return Ok(Statement::Select(Box::new(self.select()?)));
        }
        if self.eat_keyword("SHOW")? {
            return self.show();
        }
        if self.eat_keyword("CREATE")? {
            self.expect_keyword("DATABASE")?;
            return Ok(Statement::CreateDatabase(self.ident()?));
        }
        if self.eat_keyword("DROP")? {
            self.expect_keyword("DATABASE")?;
            return Ok(Statement::DropDatabase(self.ident()?));
        }
        Err(self.error("expected SELECT, SHOW, CREATE DATABASE or DROP DATABASE"))
    }

    fn optional_from(&mut self) -> Result<Option<String>, ParseError> {
        if self.eat_keyword("FROM")? {
            return Ok(Some(self.measurement()?));
        }
        Ok(None)
    }

    /// `m`, `"m"`, `db.rp.m` or `rp.m`: the measurement is the last part.
    fn measurement(&mut self) -> Result<String, ParseError> {
        if matches!(self.peek()?, Tok::Op("/")) {
            return Err(self.error("a regular expression in FROM is not supported; name the measurement"));
        }
        let mut name = self.ident()?;
        while self.eat_op(".")? {
            // `db..m` leaves the retention policy empty.
            if matches!(self.peek()?, Tok::Op(".")) {
                continue;
            }
            name = self.ident()?;
        }
        Ok(name)
    }

    fn show(&mut self) -> Result<Statement, ParseError> {
        if self.eat_keyword("DATABASES")? {
            return Ok(Statement::ShowDatabases);
        }
        if self.eat_keyword("RETENTION")? {
            self.expect_keyword("POLICIES")?;
            if self.eat_keyword("ON")? {
                self.ident()?;
            }
            return Ok(Statement::ShowRetentionPolicies);
        }
        if self.eat_keyword("MEASUREMENTS")? {
            let mut filter = None;
            if self.eat_keyword("WITH")? {
                self.expect_keyword("MEASUREMENT")?;
                filter = Some(self.name_filter()?);
            }
            let limit = if self.eat_keyword("LIMIT")? { Some(self.unsigned()?) } else { None };
            return Ok(Statement::ShowMeasurements { filter, limit });
        }
        if self.eat_keyword("FIELD")? {
            self.expect_keyword("KEYS")?;
            return Ok(Statement::ShowFieldKeys { from: self.optional_from()? });
        }
        if self.eat_keyword("SERIES")? {
            return Ok(Statement::ShowSeries { from: self.optional_from()? });
        }
        if self.eat_keyword("TAG")? {
            if self.eat_keyword("KEYS")? {
                return Ok(Statement::ShowTagKeys { from: self.optional_from()? });
            }
            self.expect_keyword("VALUES")?;
            let from = self.optional_from()?;
            self.expect_keyword("WITH")?;
            self.expect_keyword("KEY")?;
            let keys = self.name_filter()?;
            let condition = if self.eat_keyword("WHERE")? { Some(self.expr()?) } else { None };
            return Ok(Statement::ShowTagValues { from, keys, condition });
        }
        Err(self.error("expected DATABASES, MEASUREMENTS, TAG KEYS, TAG VALUES, FIELD KEYS, SERIES or RETENTION POLICIES after SHOW"))
    }

    /// `= name`, `!= name`, `=~ /re/`, `!~ /re/` or `IN (a, b)`.
    fn name_filter(&mut self) -> Result<NameFilter, ParseError> {
        if self.eat_keyword("IN")? {
            self.expect_op("(")?;
            let mut names = vec![self.ident_or_string()?];
            while self.eat_op(",")? {
                names.push(self.ident_or_string()?);
            }
            self.expect_op(")")?;
            return Ok(NameFilter::In(names));
        }
        match self.next()? {
            Tok::Op("=") => Ok(NameFilter::Eq(self.ident_or_string()?)),
            Tok::Op("!=") | Tok::Op("<>") => Ok(NameFilter::NotEq(self.ident_or_string()?)),
            Tok::Op("=~") => Ok(NameFilter::Regex(self.regex()?)),
            Tok::Op("!~") => Ok(NameFilter::NotRegex(self.regex()?)),
            _ => Err(self.error("expected =, !=, =~, !~ or IN")),
        }
    }

    fn ident_or_string(&mut self) -> Result<String, ParseError> {
        match self.peek()? {
            Tok::Str(s) => {
                self.next()?;
                Ok(s)
            }
            _ => self.ident(),
        }
    }

    fn select(&mut self) -> Result<Select, ParseError> {
        let mut fields = vec![self.field()?];
        while self.eat_op(",")? {
            fields.push(self.field()?);
        }
        self.expect_keyword("FROM")?;
        let from = self.measurement()?;
        if self.eat_op(",")? {
            return Err(self.error("selecting from several measurements at once is not supported"));
        }
        let mut s = Select {
            fields,
            from,
            condition: None,
            group_time: None,
            group_tags: Vec::new(),
            group_all_tags: false,
            fill: Fill::Null,
            descending: false,
            limit: None,
            offset: None,
            slimit: None,
            soffset: None,
        };
        if self.eat_keyword("WHERE")? {
            s.condition = Some(self.expr()?);
        }
        if self.eat_keyword("GROUP")? {
            self.expect_keyword("BY")?;
            loop {
                if self.eat_op("*")? {
                    s.group_all_tags = true;
                } else if self.is_keyword("time")? && !matches!(self.peek()?, Tok::Quoted(_)) {
                    self.next()?;
                    self.expect_op("(")?;
                    let every = match self.next()? {
                        Tok::Duration(d) if d > 0 => d,
                        _ => return Err(self.error("expected a positive duration in time()")),
                    };
                    let mut offset = 0;
                    if self.eat_op(",")? {
                        let negative = self.eat_op("-")?;
                        offset = match self.next()? {
                            Tok::Duration(d) => d,
                            Tok::Int(0) => 0,
                            _ => return Err(self.error("expected a duration offset in time()")),
                        };
                        if negative {
                            offset = -offset;
                        }
                    }
                    self.expect_op(")")?;
                    s.group_time = Some((every, offset));
                } else {
                    s.group_tags.push(self.ident()?);
                }
                if !self.eat_op(",")? {
                    break;
                }
            }
        }
        if self.eat_keyword("fill")? {
            self.expect_op("(")?;
            s.fill = match self.next()? {
                Tok::Ident(i) if i.eq_ignore_ascii_case("null") => Fill::Null,
                Tok::Ident(i) if i.eq_ignore_ascii_case("none") => Fill::None,
                Tok::Ident(i) if i.eq_ignore_ascii_case("previous") => Fill::Previous,
                Tok::Ident(i) if i.eq_ignore_ascii_case("linear") => Fill::Linear,
                Tok::Int(n) => Fill::Value(n as f64),
                Tok::Float(f) => Fill::Value(f),
                Tok::Op("-") => match self.next()? {
                    Tok::Int(n) => Fill::Value(-(n as f64)),
                    Tok::Float(f) => Fill::Value(-f),
                    _ => return Err(self.error("expected a number in fill()")),
                },
                _ => return Err(self.error("expected null, none, previous, linear or a number in fill()")),
            };
            self.expect_op(")")?;
        }
        if self.eat_keyword("ORDER")? {
            self.expect_keyword("BY")?;
            let col = self.ident()?;
            if !col.eq_ignore_ascii_case("time") {
                return Err(self.error("only ORDER BY time [ASC|DESC] is supported"));
            }
            if self.eat_keyword("DESC")? {
                s.descending = true;
            } else {
                self.eat_keyword("ASC")?;
            }
        }
        loop {
            if self.eat_keyword("LIMIT")? {
                s.limit = Some(self.unsigned()?);
            } else if self.eat_keyword("OFFSET")? {
                s.offset = Some(self.unsigned()?);
            } else if self.eat_keyword("SLIMIT")? {
                s.slimit = Some(self.unsigned()?);
            } else if self.eat_keyword("SOFFSET")? {
                s.soffset = Some(self.unsigned()?);
            } else if self.eat_keyword("tz")? {
                self.expect_op("(")?;
                let tz = self.ident_or_string()?;
                self.expect_op(")")?;
                if !tz.eq_ignore_ascii_case("UTC") && !tz.eq_ignore_ascii_case("Etc/UTC") {
                    return Err(ParseError { message: format!("tz('{tz}') is not supported; times are UTC"), pos: self.pos });
                }
            } else {
                break;
            }
        }
        Ok(s)
    }

    fn field(&mut self) -> Result<Field, ParseError> {
        let expr = self.expr()?;
        let alias = if self.eat_keyword("AS")? { Some(self.ident()?) } else { None };
        Ok(Field { expr, alias })
    }

    /// Counts one more level of nesting, refusing past [`MAX_DEPTH`]; [`Self::leave`] undoes it.
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError { message: format!("expressions nested more than {MAX_DEPTH} deep"), pos: self.pos });
        }
        Ok(())
    }

    fn leave<T>(&mut self, r: Result<T, ParseError>) -> Result<T, ParseError> {
        self.depth -= 1;
        r
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let r = self.or_expr();
        self.leave(r)
    }

    fn or_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and_expr()?;
        while self.eat_keyword("OR")? {
            let right = self.and_expr()?;
            left = Expr::Binary { op: BinOp::Or, left: Box::new(left), right: Box::new(right) };
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.comparison()?;
        while self.eat_keyword("AND")? {
            let right = self.comparison()?;
            left = Expr::Binary { op: BinOp::And, left: Box::new(left), right: Box::new(right) };
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let left = self.additive()?;
        let op = match self.peek()? {
            Tok::Op("=") => BinOp::Eq,
            Tok::Op("!=") | Tok::Op("<>") => BinOp::NotEq,
            Tok::Op("<") => BinOp::Lt,
            Tok::Op("<=") => BinOp::LtEq,
            Tok::Op(">") => BinOp::Gt,
            Tok::Op(">=") => BinOp::GtEq,
            Tok::Op("=~") => BinOp::RegexMatch,
            Tok::Op("!~") => BinOp::RegexNotMatch,
            _ => return Ok(left),
        };
        self.next()?;
        let right = if matches!(op, BinOp::RegexMatch | BinOp::RegexNotMatch) { Expr::Regex(self.regex()?) } else { self.additive()? };
        Ok(Expr::Binary { op, left: Box::new(left), right: Box::new(right) })
    }

    fn additive(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek()? {
                Tok::Op("+") => BinOp::Add,
                Tok::Op("-") => BinOp::Sub,
                _ => return Ok(left),
            };
            self.next()?;
            let right = self.multiplicative()?;
            left = Expr::Binary { op, left: Box::new(left), right: Box::new(right) };
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek()? {
                Tok::Op("*") => BinOp::Mul,
                Tok::Op("/") => BinOp::Div,
                _ => return Ok(left),
            };
            self.next()?;
            let right = self.unary()?;
            left = Expr::Binary { op, left: Box::new(left), right: Box::new(right) };
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat_op("-")? {
            self.enter()?;
            let inner = self.unary();
            let inner = self.leave(inner)?;
            return Ok(match inner {
                Expr::Integer(n) => Expr::Integer(-n),
                Expr::Float(f) => Expr::Float(-f),
                Expr::Duration(d) => Expr::Duration(-d),
                e => Expr::Neg(Box::new(e)),
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let tok = self.next()?;
        let e = match tok {
            Tok::Int(n) => Expr::Integer(n),
            Tok::Float(f) => Expr::Float(f),
            Tok::Str(s) => Expr::Str(s),
            Tok::Duration(d) => Expr::Duration(d),
            Tok::Op("*") => Expr::Wildcard,
            Tok::Op("(") => {
                let e = self.expr()?;
                self.expect_op(")")?;
                e
            }
            Tok::Quoted(name) => Expr::Var(name),
            Tok::Ident(name) if name.eq_ignore_ascii_case("true") => Expr::Bool(true),
            Tok::Ident(name) if name.eq_ignore_ascii_case("false") => Expr::Bool(false),
            Tok::Ident(name) if RESERVED.iter().any(|k| name.eq_ignore_ascii_case(k)) => {
                return Err(ParseError { message: format!("expected an expression, found the keyword {}", name.to_ascii_uppercase()), pos: self.pos - name.len() })
            }
            Tok::Ident(name) => {
                if self.eat_op("(")? {
                    let lower = name.to_ascii_lowercase();
                    if lower == "now" {
                        self.expect_op(")")?;
                        return Ok(Expr::Now);
                    }
                    let mut args = Vec::new();
                    if !self.eat_op(")")? {
                        loop {
                            args.push(self.expr()?);
                            if !self.eat_op(",")? {
                                break;
                            }
                        }
                        self.expect_op(")")?;
                    }
                    return Ok(Expr::Call { name: lower, args });
                }
                Expr::Var(name)
            }
            _ => return Err(self.error("expected an expression")),
        };
        // `field::float`, `tag::tag`: the type hint is accepted and ignored.
        if matches!(e, Expr::Var(_)) && self.eat_op("::")? {
            self.ident()?;
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(q: &str) -> Statement {
        let mut v = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn grafana_style_selects_parse() {
        let Statement::Select(s) = one(
            r#"SELECT mean("usage_user") AS "u", max(usage_system::float) FROM "telegraf"."autogen"."cpu" WHERE ("host" =~ /^web\/\d+$/ AND cpu != 'cpu-total') AND time >= now() - 1h30m and time <= 1700000000000ms GROUP BY time(10s, -5s), "host" fill(previous) ORDER BY time DESC LIMIT 10 SLIMIT 2 tz('UTC')"#,
        ) else {
            panic!("not a select")
        };
        assert_eq!(s.from, "cpu");
        assert_eq!(s.fields.len(), 2);
        assert_eq!(s.fields[0].alias.as_deref(), Some("u"));
        assert_eq!(s.fields[1].expr, Expr::Call { name: "max".into(), args: vec![Expr::Var("usage_system".into())] });
        assert_eq!(s.group_time, Some((10_000_000_000, -5_000_000_000)));
        assert_eq!(s.group_tags, vec!["host".to_string()]);
        assert_eq!(s.fill, Fill::Previous);
        assert!(s.descending);
        assert_eq!((s.limit, s.slimit), (Some(10), Some(2)));
        let cond = format!("{:?}", s.condition.unwrap());
        assert!(cond.contains(r#"Regex("^web/\\d+$")"#), "{cond}");
        assert!(cond.contains("Duration(5400000000000)"), "{cond}");
        assert!(cond.contains("Duration(1700000000000000000)"), "{cond}");
    }

    #[test]
    fn show_create_drop_and_several_statements() {
        let v = parse("SHOW DATABASES; show measurements with measurement =~ /cp.*/ limit 5; SHOW TAG VALUES FROM cpu WITH KEY IN (host, region);SHOW FIELD KEYS FROM \"cpu\"; CREATE DATABASE x; DROP DATABASE \"y\"").unwrap();
        assert_eq!(v[0], Statement::ShowDatabases);
        assert_eq!(v[1], Statement::ShowMeasurements { filter: Some(NameFilter::Regex("cp.*".into())), limit: Some(5) });
        assert_eq!(
            v[2],
            Statement::ShowTagValues { from: Some("cpu".into()), keys: NameFilter::In(vec!["host".into(), "region".into()]), condition: None }
        );
        assert_eq!(v[3], Statement::ShowFieldKeys { from: Some("cpu".into()) });
        assert_eq!(v[4], Statement::CreateDatabase("x".into()));
        assert_eq!(v[5], Statement::DropDatabase("y".into()));
    }

    #[test]
    fn errors_name_what_was_expected() {
        for (q, want) in [
            ("SELEC * FROM cpu", "expected SELECT"),
            ("SELECT FROM cpu", "expected an expression"),
            ("SELECT * FROM cpu WHERE", "expected an expression"),
            ("SELECT * FROM cpu GROUP BY time(0s)", "positive duration"),
            ("SELECT * FROM /cpu/", "regular expression in FROM"),
            ("SELECT * FROM cpu ORDER BY host", "only ORDER BY time"),
            ("SELECT 'unterminated FROM cpu", "unterminated"),
            ("SELECT * FROM cpu tz('Europe/Paris')", "tz("),
            ("", "empty"),
            (&format!("SELECT {}x{} FROM cpu", "(".repeat(100_000), ")".repeat(100_000)), "nested more than"),
            (&format!("SELECT {}x FROM cpu", "- ".repeat(100_000)), "nested more than"),
        ] {
            let e = parse(q).unwrap_err();
            assert!(e.to_string().contains(want), "{q}: {e}");
        }
    }
}
