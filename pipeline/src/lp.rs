//! Line protocol parser.
//!
//! Owns the grammar of InfluxDB line protocol: measurement, escaped tags, typed fields, optional
//! timestamp, comments and blank lines. It parses *in place*: names and values borrow from the
//! request body and are copied only when they contain escapes. It never allocates per line beyond
//! the line's field vector and, for a series new to the body, its shared tag list; it never
//! panics on any input, and reports every bad line with its 1-based line number so the rest of
//! the body can still be written.
//!
//! Budget: ≥ 500 MB/s per core on TSBS cpu lines (~200 bytes, 10 tags, 10 float fields), i.e.
//! ≤ 400 ns a line. `benches/benches/parse_lp.rs` measures it.
//!
//! A string field value may hold a raw newline (what a correct LineBuilder emits for a string
//! with a newline), so lines are not split on `\n` up front: the parser walks the body and a line
//! ends at the first newline outside a quoted string.
//!
//! A body usually repeats a few series many times (every host reports every interval), so the
//! parser remembers each series it has parsed in the body. A line whose measurement and tags
//! are byte for byte a remembered series shares that parse ([`ParsedLine::tags`] is one `Rc`),
//! and only its fields and timestamp are read. Equal bytes parse alike, so this changes no
//! result: it only skips work.

// Shard code: no call here may block the thread (clippy.toml lists the calls).
#![deny(clippy::disallowed_methods)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;

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

/// A tag's key and value.
pub type Tag<'a> = (Cow<'a, str>, Cow<'a, str>);

/// One parsed line, borrowing from the body.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLine<'a> {
    pub measurement: Cow<'a, str>,
    /// The measurement and tag set as sent, escapes and all: two lines with the same `series`
    /// bytes have the same measurement and tags.
    pub series: &'a [u8],
    /// Shared by every line of the body with the same `series` bytes.
    pub tags: Rc<[Tag<'a>]>,
    pub fields: Vec<(Cow<'a, str>, FieldValue<'a>)>,
    /// Raw timestamp in the request's precision; `None` means "server time".
    pub timestamp: Option<i64>,
}

impl ParsedLine<'_> {
    /// Renders the line back to line protocol, escaped so that it parses to the same values.
    /// Floats use Rust's shortest round-trip form.
    pub fn to_line_protocol(&self) -> String {
        let mut s = escape_measurement(&self.measurement);
        for (k, v) in self.tags.iter() {
            s.push(',');
            s.push_str(&escape_key(k));
            s.push('=');
            s.push_str(&escape_key(v));
        }
        s.push(' ');
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&escape_key(k));
            s.push('=');
            match v {
                FieldValue::Float(f) => s.push_str(&format!("{f:?}")),
                FieldValue::Integer(n) => s.push_str(&format!("{n}i")),
                FieldValue::UInteger(n) => s.push_str(&format!("{n}u")),
                FieldValue::Boolean(b) => s.push_str(if *b { "true" } else { "false" }),
                FieldValue::String(t) => {
                    s.push('"');
                    s.push_str(&escape_string_field(t));
                    s.push('"');
                }
            }
        }
        if let Some(ts) = self.timestamp {
            s.push(' ');
            s.push_str(&ts.to_string());
        }
        s
    }
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
    /// The number the parser gave the line's series, when it remembered it: lines with the
    /// same number begin with the same series bytes. The WAL logs such a series once per entry,
    /// and a table builder looks its tags up once per body.
    pub series_id: Option<SeriesId>,
}

/// A series as the parser numbered it: `id` counts the series of one body (from 0, in order of
/// first appearance), and `body` tells that body from every other parsed in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesId {
    pub body: u64,
    pub id: u32,
}

/// Bodies parsed so far in this process, numbering each for [`SeriesId::body`].
static BODIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Iterates over the non-blank, non-comment lines of a body.
pub struct Lines<'a> {
    body: &'a [u8],
    /// This body's number ([`SeriesId::body`]).
    body_id: u64,
    pos: usize,
    line_number: usize,
    /// The whole body is valid UTF-8 (checked once), so tokens need no check of their own.
    utf8: bool,
    /// Field count of the previous line: the next line's vector starts that large.
    hint: usize,
    /// Series parsed earlier in this body, by their raw bytes.
    known: HashMap<&'a [u8], Series<'a>, foldhash::fast::FixedState>,
    /// Lookups that found a series and lookups that did not: a body of ever-new series stops
    /// looking (see [`Lines::looking`]), so it pays for a few misses, not one a line.
    hits: usize,
    misses: usize,
    /// Reused for the tags of each line parsed in full, so that only the shared copy is
    /// allocated.
    scratch: Vec<Tag<'a>>,
}

/// A parsed measurement and tag set.
#[derive(Clone)]
struct Series<'a> {
    measurement: Cow<'a, str>,
    tags: Rc<[Tag<'a>]>,
    id: u32,
}

/// Series remembered per body: enough for every host of a typical batch, bounded for bodies
/// of high cardinality.
const MAX_KNOWN_SERIES: usize = 4096;

/// Parses a whole body lazily.
pub fn parse_lines(body: &[u8]) -> Lines<'_> {
    Lines {
        body,
        body_id: BODIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        pos: 0,
        line_number: 1,
        utf8: std::str::from_utf8(body).is_ok(),
        hint: 4,
        known: HashMap::default(),
        hits: 0,
        misses: 0,
        scratch: Vec::new(),
    }
}

impl<'a> Lines<'a> {
    /// The series a line starting at `start` repeats, with the position of the space after it.
    /// The first space ends a series without escapes; a series with escapes is never
    /// remembered (an escaped space inside it would end the search early), so it is parsed in
    /// full each time.
    #[inline]
    fn repeated_series(&mut self, start: usize) -> Option<(usize, Series<'a>)> {
        if self.known.is_empty() || !self.looking() {
            return None;
        }
        let rest = &self.body[start..];
        let end = start + memchr::memchr3(b' ', b'\\', b'\n', rest)?;
        if self.body[end] != b' ' {
            return None;
        }
        match self.known.get(&self.body[start..end]) {
            Some(s) => {
                self.hits += 1;
                Some((end, s.clone()))
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Whether series repeat enough to be worth looking up: the first occurrence of each is a
    /// miss, so a few hundred misses are allowed before the hits must outnumber them.
    #[inline]
    fn looking(&self) -> bool {
        self.misses < 256 || self.misses < 2 * self.hits
    }

    /// Remembers the series of a line parsed in full, if it is worth it; returns its number.
    fn remember(&mut self, line: &ParsedLine<'a>) -> Option<u32> {
        if self.looking() && self.known.len() < MAX_KNOWN_SERIES && memchr::memchr(b'\\', line.series).is_none() {
            let id = self.known.len() as u32;
            let s = self.known.entry(line.series).or_insert_with(|| Series { measurement: line.measurement.clone(), tags: line.tags.clone(), id });
            return Some(s.id);
        }
        None
    }
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
            let mut p = Parser { b: self.body, pos: start, newlines: 0, utf8: self.utf8, detail: (0, 0), key: (0, 0) };
            let mut series_id = None;
            let parsed = match self.repeated_series(start) {
                Some((end, series)) => {
                    p.pos = end;
                    series_id = Some(series.id);
                    p.rest(series.measurement, &self.body[start..end], series.tags, self.hint)
                }
                None => {
                    let parsed = p.line(&mut self.scratch, self.hint);
                    if let Ok(l) = &parsed {
                        series_id = self.remember(l);
                    }
                    parsed
                }
            }
            .map_err(|f| p.message(f));
            if let Ok(l) = &parsed {
                self.hint = l.fields.len();
            }
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
            let series_id = series_id.filter(|_| parsed.is_ok()).map(|id| SeriesId { body: self.body_id, id });
            return Some(Item { line_number, text, parsed, series_id });
        }
    }
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    /// Raw newlines consumed inside string fields.
    newlines: usize,
    utf8: bool,
    /// The text an error is about (a key or a value), as a span of the body. Errors travel as
    /// a one-byte [`Fail`] and are rendered into a message only when a line is refused: moving a
    /// `String` error through every token's `Result` cost ~40% of parse time.
    detail: (usize, usize),
    /// The field key being parsed, for messages about its value.
    key: (usize, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    NoMeasurement,
    EmptyTagKey,
    TagWithoutValue,
    EmptyTagValue,
    NoSpaceBeforeFields,
    NoFields,
    EmptyFieldKey,
    FieldWithoutValue,
    FieldValueMissing,
    InvalidFieldValue,
    UnterminatedString,
    InvalidUtf8,
    UnexpectedAfterFields,
    InvalidTimestamp,
    TextAfterTimestamp,
}

#[inline]
fn is_line_end(c: u8) -> bool {
    c == b'\n'
}

/// A 256-entry membership table, so scanning is one load and branch per byte.
const fn byte_set(chars: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < chars.len() {
        t[chars[i] as usize] = true;
        i += 1;
    }
    t
}

static MEASUREMENT_STOP: [bool; 256] = byte_set(b",\\ \n\r");
static KEY_STOP: [bool; 256] = byte_set(b",=\\ \n\r");
static VALUE_STOP: [bool; 256] = byte_set(b", \t\n\r");

/// Token bytes as text. In a body already known to be UTF-8 the check is skipped.
#[inline]
fn as_str(raw: &[u8], body_is_utf8: bool) -> Option<&str> {
    if body_is_utf8 {
        // SAFETY: the whole body is valid UTF-8, and every token starts and ends at an ASCII
        // byte (a delimiter) or at the body's ends; an ASCII byte is never inside a multi-byte
        // sequence, so each token is itself valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(raw) })
    } else {
        std::str::from_utf8(raw).ok()
    }
}

impl<'a> Parser<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// Renders a failure with the text it is about.
    fn message(&self, f: Fail) -> String {
        let (a, b) = self.detail;
        let d = String::from_utf8_lossy(self.b.get(a..b).unwrap_or_default());
        let key = String::from_utf8_lossy(self.b.get(self.key.0..self.key.1).unwrap_or_default());
        match f {
            Fail::NoMeasurement => "missing measurement name".into(),
            Fail::EmptyTagKey => "empty tag key".into(),
            Fail::TagWithoutValue => format!("tag '{d}' has no '=' and value"),
            Fail::EmptyTagValue => format!("tag '{d}' has an empty value"),
            Fail::NoSpaceBeforeFields => "expected a space and fields after the measurement and tags".into(),
            Fail::NoFields => "no fields".into(),
            Fail::EmptyFieldKey => "empty field key".into(),
            Fail::FieldWithoutValue => format!("field '{d}' has no '=' and value"),
            Fail::FieldValueMissing => format!("field '{key}' has no value"),
            Fail::InvalidFieldValue => format!("invalid value '{d}' for field '{key}'"),
            Fail::UnterminatedString => format!("unterminated string for field '{key}'"),
            Fail::InvalidUtf8 => "invalid UTF-8".into(),
            Fail::UnexpectedAfterFields => format!("unexpected character '{d}' after fields"),
            Fail::InvalidTimestamp => format!("invalid timestamp '{d}'"),
            Fail::TextAfterTimestamp => "unexpected text after the timestamp".into(),
        }
    }

    fn line(&mut self, tags: &mut Vec<Tag<'a>>, hint: usize) -> Result<ParsedLine<'a>, Fail> {
        let start = self.pos;
        let measurement = self.name(NameKind::Measurement)?;
        if measurement.is_empty() {
            return Err(Fail::NoMeasurement);
        }
        tags.clear();
        while self.peek() == Some(b',') {
            self.pos += 1;
            let key_start = self.pos;
            let key = self.name(NameKind::Key)?;
            self.detail = (key_start, self.pos);
            if key.is_empty() {
                return Err(Fail::EmptyTagKey);
            }
            if self.peek() != Some(b'=') {
                return Err(Fail::TagWithoutValue);
            }
            self.pos += 1;
            let value = self.name(NameKind::TagValue)?;
            if value.is_empty() {
                return Err(Fail::EmptyTagValue);
            }
            tags.push((key, value));
        }
        if self.peek() != Some(b' ') {
            return Err(Fail::NoSpaceBeforeFields);
        }
        let series = &self.b[start..self.pos];
        self.rest(measurement, series, share(tags), hint)
    }

    /// The rest of a line after its series, from the space that ends it.
    #[inline(always)]
    fn rest(&mut self, measurement: Cow<'a, str>, series: &'a [u8], tags: Rc<[Tag<'a>]>, hint: usize) -> Result<ParsedLine<'a>, Fail> {
        self.skip_spaces();
        let mut fields = Vec::with_capacity(hint.max(1));
        loop {
            let key_start = self.pos;
            let key = self.name(NameKind::Key)?;
            self.detail = (key_start, self.pos);
            self.key = self.detail;
            if key.is_empty() {
                return Err(if fields.is_empty() { Fail::NoFields } else { Fail::EmptyFieldKey });
            }
            if self.peek() != Some(b'=') {
                return Err(Fail::FieldWithoutValue);
            }
            self.pos += 1;
            let value = self.field_value()?;
            push_field(&mut fields, key, value);
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
            Some(_) => {
                self.detail = (self.pos, self.pos + 1);
                return Err(Fail::UnexpectedAfterFields);
            }
        };
        self.skip_spaces();
        if self.peek() == Some(b'\r') {
            self.pos += 1;
        }
        match self.peek() {
            None => {}
            Some(c) if is_line_end(c) => {}
            Some(_) => return Err(Fail::TextAfterTimestamp),
        }
        Ok(ParsedLine { measurement, series, tags, fields, timestamp })
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Reads a measurement, key or tag value up to its unescaped terminator.
    #[inline(always)]
    fn name(&mut self, kind: NameKind) -> Result<Cow<'a, str>, Fail> {
        let stop = if kind == NameKind::Measurement { &MEASUREMENT_STOP } else { &KEY_STOP };
        let start = self.pos;
        let mut escaped = false;
        let b = self.b;
        let mut pos = self.pos;
        loop {
            while pos < b.len() && !stop[b[pos] as usize] {
                pos += 1;
            }
            match b.get(pos) {
                None => break,
                Some(b'\\') => {
                    escaped = true;
                    // A backslash escapes the next byte, whatever it is, except a newline.
                    match b.get(pos + 1) {
                        Some(b'\n') | None => pos += 1,
                        Some(_) => pos += 2,
                    }
                }
                // A lone carriage return is part of the name; before a newline it ends the line.
                Some(b'\r') if b.get(pos + 1) != Some(&b'\n') => pos += 1,
                Some(_) => break,
            }
        }
        self.pos = pos.min(b.len());
        let raw = &b[start..self.pos];
        let s = as_str(raw, self.utf8).ok_or(Fail::InvalidUtf8)?;
        if !escaped {
            return Ok(Cow::Borrowed(s));
        }
        Ok(Cow::Owned(unescape_name(s, kind)))
    }

    // Inlined: returned through memory, the value's halves were written apart and read back
    // as one 16-byte load, a store-forwarding stall on every field.
    #[inline(always)]
    fn field_value(&mut self) -> Result<FieldValue<'a>, Fail> {
        if self.peek() == Some(b'"') {
            return self.string_value().map(FieldValue::String);
        }
        let start = self.pos;
        let b = self.b;
        let mut pos = self.pos;
        while pos < b.len() && !VALUE_STOP[b[pos] as usize] {
            pos += 1;
        }
        self.pos = pos;
        let raw = &b[start..pos];
        if raw.is_empty() {
            return Err(Fail::FieldValueMissing);
        }
        match parse_scalar(raw) {
            Some(v) => Ok(v),
            None => {
                self.detail = (start, pos);
                Err(Fail::InvalidFieldValue)
            }
        }
    }

    fn string_value(&mut self) -> Result<Cow<'a, str>, Fail> {
        self.pos += 1; // opening quote
        let start = self.pos;
        let mut escaped = false;
        let mut newlines = 0;
        loop {
            match memchr::memchr3(b'"', b'\\', b'\n', &self.b[self.pos..]) {
                None => return Err(Fail::UnterminatedString),
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
        let s = as_str(raw, self.utf8).ok_or(Fail::InvalidUtf8)?;
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

    fn timestamp(&mut self) -> Result<i64, Fail> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' {
                break;
            }
            self.pos += 1;
        }
        let raw = &self.b[start..self.pos];
        let parsed = if plain_integer(raw) { lexical_core::parse::<i64>(raw).ok() } else { None };
        if parsed.is_none() {
            self.detail = (start, self.pos);
        }
        parsed.ok_or(Fail::InvalidTimestamp)
    }
}

/// `fields.push((key, value))`, writing the two halves straight into the vector. Pushed as a
/// tuple, the pair was assembled on the stack from stores of different widths and copied out
/// with 16-byte loads that straddled them, a store-forwarding stall on every field: that load
/// was the parser's hottest instruction (19% of its samples in `perf annotate`).
#[inline(always)]
fn push_field<'a>(fields: &mut Vec<(Cow<'a, str>, FieldValue<'a>)>, key: Cow<'a, str>, value: FieldValue<'a>) {
    fields.reserve(1);
    let len = fields.len();
    // SAFETY: `reserve` made room for one more element at `len`; both halves are written
    // before the length covers them, and nothing can unwind in between.
    unsafe {
        let slot = fields.as_mut_ptr().add(len);
        std::ptr::addr_of_mut!((*slot).0).write(key);
        std::ptr::addr_of_mut!((*slot).1).write(value);
        fields.set_len(len + 1);
    }
}

/// Moves the tags out of `scratch` into one shared slice of the exact size, leaving `scratch`
/// empty with its capacity: one allocation a line, and a copy rather than a clone a tag.
fn share<'a>(scratch: &mut Vec<Tag<'a>>) -> Rc<[Tag<'a>]> {
    let n = scratch.len();
    let mut shared = Rc::<[Tag<'a>]>::new_uninit_slice(n);
    let Some(slots) = Rc::get_mut(&mut shared) else { unreachable!("a new Rc has no other owner") };
    // SAFETY: `slots` has room for `n` tags and does not overlap `scratch`. The tags are moved
    // bitwise, and `set_len(0)` makes `scratch` forget them, so each is dropped once, by the Rc;
    // all `n` slots are then initialised.
    unsafe {
        std::ptr::copy_nonoverlapping(scratch.as_ptr(), slots.as_mut_ptr().cast::<Tag<'a>>(), n);
        scratch.set_len(0);
        shared.assume_init()
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
#[inline(always)]
fn parse_scalar(raw: &[u8]) -> Option<FieldValue<'static>> {
    let (last, body) = raw.split_last()?;
    match last {
        b'i' => return plain_integer(body).then(|| lexical_core::parse::<i64>(body).ok()).flatten().map(FieldValue::Integer),
        b'u' => return plain_integer(body).then(|| lexical_core::parse::<u64>(body).ok()).flatten().map(FieldValue::UInteger),
        _ => {}
    }
    match raw {
        b"t" | b"T" | b"true" | b"True" | b"TRUE" => return Some(FieldValue::Boolean(true)),
        b"f" | b"F" | b"false" | b"False" | b"FALSE" => return Some(FieldValue::Boolean(false)),
        _ => {}
    }
    if let Some(v) = plain_decimal(raw) {
        return Some(FieldValue::Float(v));
    }
    // Digits, sign, dot and exponent only: this refuses "inf", "NaN" and friends up front.
    if !raw.iter().all(|c| matches!(c, b'0'..=b'9' | b'.' | b'-' | b'+' | b'e' | b'E')) {
        return None;
    }
    let v = lexical_core::parse::<f64>(raw).ok()?;
    v.is_finite().then_some(FieldValue::Float(v))
}

/// Exact powers of ten up to 10^15, all representable in an `f64`.
const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// The common float spelling, `-?D+(.D+)?` with at most 15 digits, in one pass. Such a number
/// is `m / 10^k` with `m < 2^53` and `10^k` both exact in an `f64`, so one IEEE division gives
/// the correctly rounded value (Clinger's fast path), the same `f64` a full parser returns.
/// Anything else (exponents, more digits, `1.`, `.5`, `+1`) is `None` and takes the full
/// parser.
#[inline(always)]
fn plain_decimal(raw: &[u8]) -> Option<f64> {
    let (negative, digits) = match raw.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, raw),
    };
    if digits.len() > 16 {
        return None;
    }
    let mut m: u64 = 0;
    let mut dot = None;
    for (i, &c) in digits.iter().enumerate() {
        match c {
            b'0'..=b'9' => m = m * 10 + u64::from(c - b'0'),
            b'.' if dot.is_none() => dot = Some(i),
            _ => return None,
        }
    }
    let scale = match dot {
        None if !digits.is_empty() && digits.len() <= 15 => 0,
        Some(i) if i > 0 && i + 1 < digits.len() => digits.len() - i - 1,
        _ => return None,
    };
    // Without a dot, at most 15 digits were allowed above; with one, 16 bytes hold 15.
    let v = m as f64 / POW10[scale];
    Some(if negative { -v } else { v })
}

/// An optional leading `-` or `+`, then at least one digit and nothing else.
fn plain_integer(b: &[u8]) -> bool {
    let digits = match b.first() {
        Some(b'-' | b'+') => &b[1..],
        _ => b,
    };
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
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
#[allow(clippy::disallowed_methods)]
#[path = "lp_tests.rs"]
mod tests;
