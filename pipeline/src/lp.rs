//! Line protocol parser.
//!
//! Owns the grammar of InfluxDB line protocol: measurement, escaped tags, typed fields, optional
//! timestamp, comments and blank lines. It parses *in place*: names and values borrow from the
//! request body and are copied only when they contain escapes. It never allocates per line beyond
//! two small vectors, never panics on any input, and reports every bad line with its 1-based line
//! number so the rest of the body can still be written.
//!
//! Budget: ≥ 500 MB/s per core on TSBS cpu lines (~200 bytes, 10 tags, 10 float fields), i.e.
//! ≤ 400 ns a line. `benches/benches/parse_lp.rs` measures it.
//!
//! A string field value may hold a raw newline (what a correct LineBuilder emits for a string
//! with a newline), so lines are not split on `\n` up front: the parser walks the body and a line
//! ends at the first newline outside a quoted string.

use std::borrow::Cow;

/// A field's value, typed by its syntax.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Float(f64),
    Integer(i64),
    UInteger(u64),
    String(Cow<'a, str>),
    Boolean(bool),
}

impl FieldValue<'_> {
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldValue::Float(_) => "float",
            FieldValue::Integer(_) => "integer",
            FieldValue::UInteger(_) => "uinteger",
            FieldValue::String(_) => "string",
            FieldValue::Boolean(_) => "boolean",
        }
    }
}

/// One parsed line, borrowing from the body.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLine<'a> {
    pub measurement: Cow<'a, str>,
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub fields: Vec<(Cow<'a, str>, FieldValue<'a>)>,
    /// Raw timestamp in the request's precision; `None` means "server time".
    pub timestamp: Option<i64>,
}

/// A line that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line_number}: {message}")]
pub struct LineError {
    pub line_number: usize,
    pub message: String,
}

/// One item of a body: a line (good or bad) with its position.
#[derive(Debug)]
pub struct Item<'a> {
    /// 1-based number of the physical line where this line starts.
    pub line_number: usize,
    /// The line's text as sent (without the trailing newline).
    pub text: &'a [u8],
    pub parsed: Result<ParsedLine<'a>, String>,
}

/// Iterates over the non-blank, non-comment lines of a body.
pub struct Lines<'a> {
    body: &'a [u8],
    pos: usize,
    line_number: usize,
}

/// Parses a whole body lazily.
pub fn parse_lines(body: &[u8]) -> Lines<'_> {
    Lines { body, pos: 0, line_number: 1 }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        loop {
            // Skip leading whitespace and blank lines, counting newlines.
            while self.pos < self.body.len() {
                match self.body[self.pos] {
                    b'\n' => {
                        self.line_number += 1;
                        self.pos += 1;
                    }
                    b' ' | b'\t' | b'\r' => self.pos += 1,
                    _ => break,
                }
            }
            if self.pos >= self.body.len() {
                return None;
            }
            let start = self.pos;
            let line_number = self.line_number;
            if self.body[start] == b'#' {
                let end = memchr::memchr(b'\n', &self.body[start..]).map_or(self.body.len(), |i| start + i);
                self.pos = end;
                continue;
            }
            let mut p = Parser { b: self.body, pos: start, newlines: 0 };
            let parsed = p.line();
            let (end, newlines) = match parsed {
                Ok(_) => (p.pos, p.newlines),
                // On error, the line is everything up to the next newline from its start: an
                // unterminated quote must not swallow the lines after it.
                Err(_) => (memchr::memchr(b'\n', &self.body[start..]).map_or(self.body.len(), |i| start + i), 0),
            };
            self.pos = end;
            self.line_number += newlines;
            let mut text = &self.body[start..end];
            while let [rest @ .., b'\r' | b' ' | b'\t'] = text {
                text = rest;
            }
            return Some(Item { line_number, text, parsed });
        }
    }
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    /// Raw newlines consumed inside string fields.
    newlines: usize,
}

#[inline]
fn is_line_end(c: u8) -> bool {
    c == b'\n'
}

impl<'a> Parser<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn line(&mut self) -> Result<ParsedLine<'a>, String> {
        let measurement = self.name(NameKind::Measurement)?;
        if measurement.is_empty() {
            return Err("missing measurement name".into());
        }
        let mut tags = Vec::new();
        while self.peek() == Some(b',') {
            self.pos += 1;
            let key = self.name(NameKind::Key)?;
            if key.is_empty() {
                return Err("empty tag key".into());
            }
            if self.peek() != Some(b'=') {
                return Err(format!("tag '{key}' has no '=' and value"));
            }
            self.pos += 1;
            let value = self.name(NameKind::TagValue)?;
            if value.is_empty() {
                return Err(format!("tag '{key}' has an empty value"));
            }
            tags.push((key, value));
        }
        match self.peek() {
            Some(b' ') => {}
            _ => return Err("expected a space and fields after the measurement and tags".into()),
        }
        self.skip_spaces();
        let mut fields = Vec::new();
        loop {
            let key = self.name(NameKind::Key)?;
            if key.is_empty() {
                return Err(if fields.is_empty() { "no fields".into() } else { "empty field key".into() });
            }
            if self.peek() != Some(b'=') {
                return Err(format!("field '{key}' has no '=' and value"));
            }
            self.pos += 1;
            let value = self.field_value(&key)?;
            fields.push((key, value));
            if self.peek() == Some(b',') {
                self.pos += 1;
            } else {
                break;
            }
        }
        let timestamp = match self.peek() {
            None => None,
            Some(c) if is_line_end(c) || c == b'\r' => None,
            Some(b' ' | b'\t') => {
                self.skip_spaces();
                match self.peek() {
                    None => None,
                    Some(c) if is_line_end(c) || c == b'\r' => None,
                    _ => Some(self.timestamp()?),
                }
            }
            Some(c) => return Err(format!("unexpected character '{}' after fields", c as char)),
        };
        self.skip_spaces();
        if self.peek() == Some(b'\r') {
            self.pos += 1;
        }
        match self.peek() {
            None => {}
            Some(c) if is_line_end(c) => {}
            Some(_) => return Err("unexpected text after the timestamp".into()),
        }
        Ok(ParsedLine { measurement, tags, fields, timestamp })
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Reads a measurement, key or tag value up to its unescaped terminator.
    fn name(&mut self, kind: NameKind) -> Result<Cow<'a, str>, String> {
        let start = self.pos;
        let mut escaped = false;
        while let Some(c) = self.peek() {
            match c {
                b'\\' => {
                    escaped = true;
                    // A backslash escapes the next byte, whatever it is, except a newline.
                    match self.b.get(self.pos + 1) {
                        Some(b'\n') | None => self.pos += 1,
                        Some(_) => self.pos += 2,
                    }
                }
                b',' | b' ' => break,
                b'=' if kind != NameKind::Measurement => break,
                b'\n' => break,
                b'\r' if self.b.get(self.pos + 1) == Some(&b'\n') => break,
                _ => self.pos += 1,
            }
        }
        let raw = &self.b[start..self.pos];
        let s = std::str::from_utf8(raw).map_err(|_| "invalid UTF-8".to_string())?;
        if !escaped {
            return Ok(Cow::Borrowed(s));
        }
        Ok(Cow::Owned(unescape_name(s, kind)))
    }

    fn field_value(&mut self, key: &str) -> Result<FieldValue<'a>, String> {
        if self.peek() == Some(b'"') {
            return self.string_value(key).map(FieldValue::String);
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == b',' || c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' {
                break;
            }
            self.pos += 1;
        }
        let raw = &self.b[start..self.pos];
        if raw.is_empty() {
            return Err(format!("field '{key}' has no value"));
        }
        parse_scalar(raw).ok_or_else(|| {
            format!("invalid value for field '{key}': '{}'", String::from_utf8_lossy(raw))
        })
    }

    fn string_value(&mut self, key: &str) -> Result<Cow<'a, str>, String> {
        self.pos += 1; // opening quote
        let start = self.pos;
        let mut escaped = false;
        let mut newlines = 0;
        loop {
            match memchr::memchr3(b'"', b'\\', b'\n', &self.b[self.pos..]) {
                None => return Err(format!("unterminated string for field '{key}'")),
                Some(i) => {
                    self.pos += i;
                    match self.b[self.pos] {
                        b'"' => break,
                        b'\n' => {
                            newlines += 1;
                            self.pos += 1;
                        }
                        _ => {
                            escaped = true;
                            if self.b.get(self.pos + 1) == Some(&b'\n') {
                                newlines += 1;
                            }
                            self.pos = (self.pos + 2).min(self.b.len());
                        }
                    }
                }
            }
        }
        let raw = &self.b[start..self.pos];
        self.pos += 1; // closing quote
        self.newlines += newlines;
        let s = std::str::from_utf8(raw).map_err(|_| format!("invalid UTF-8 in field '{key}'"))?;
        if !escaped {
            return Ok(Cow::Borrowed(s));
        }
        let mut out = String::with_capacity(s.len());
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some(n @ ('"' | '\\')) => out.push(n),
                    Some(n) => {
                        out.push('\\');
                        out.push(n);
                    }
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        Ok(Cow::Owned(out))
    }

    fn timestamp(&mut self) -> Result<i64, String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' {
                break;
            }
            self.pos += 1;
        }
        let raw = &self.b[start..self.pos];
        let s = std::str::from_utf8(raw).map_err(|_| "invalid timestamp".to_string())?;
        s.parse::<i64>().map_err(|_| format!("invalid timestamp '{s}'"))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum NameKind {
    Measurement,
    Key,
    TagValue,
}

fn unescape_name(s: &str, kind: NameKind) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(n @ (',' | ' ')) => out.push(n),
            Some('=') if kind != NameKind::Measurement => out.push('='),
            Some('\\') => out.push('\\'),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Parses a non-string field value: `1i`, `1u`, booleans, or a finite float.
fn parse_scalar(raw: &[u8]) -> Option<FieldValue<'static>> {
    let (last, body) = raw.split_last()?;
    match last {
        b'i' => {
            let s = std::str::from_utf8(body).ok()?;
            return s.parse::<i64>().ok().map(FieldValue::Integer);
        }
        b'u' => {
            let s = std::str::from_utf8(body).ok()?;
            return s.parse::<u64>().ok().map(FieldValue::UInteger);
        }
        _ => {}
    }
    match raw {
        b"t" | b"T" | b"true" | b"True" | b"TRUE" => return Some(FieldValue::Boolean(true)),
        b"f" | b"F" | b"false" | b"False" | b"FALSE" => return Some(FieldValue::Boolean(false)),
        _ => {}
    }
    // Only digits, sign, dot and exponent: Rust would also accept "inf" and "NaN".
    if !raw.iter().all(|c| matches!(c, b'0'..=b'9' | b'.' | b'-' | b'+' | b'e' | b'E')) {
        return None;
    }
    let s = std::str::from_utf8(raw).ok()?;
    let v = s.parse::<f64>().ok()?;
    v.is_finite().then_some(FieldValue::Float(v))
}

/// Escapes a measurement name for line protocol.
pub fn escape_measurement(s: &str) -> String {
    escape_with(s, &[',', ' ', '\\'])
}

/// Escapes a tag key, tag value or field key for line protocol.
pub fn escape_key(s: &str) -> String {
    escape_with(s, &[',', ' ', '=', '\\'])
}

/// Escapes a string field value (without the quotes).
pub fn escape_string_field(s: &str) -> String {
    escape_with(s, &['"', '\\'])
}

fn escape_with(s: &str, special: &[char]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[path = "lp_tests.rs"]
mod tests;
