//! InfluxQL `SELECT` to SQL: one DataFusion query per statement, whose rows come back ordered
//! by the series' tags, then time, with positional names (`__t` the time in nanoseconds,
//! `__g0..` the GROUP BY tags, `__f0..` the selected values). [`super::series`] then splits
//! them into series, fills empty time buckets and applies the per-series limits, which SQL
//! has no words for.
//!
//! It needs the measurement's columns (which are tags, which fields) and never runs anything.

use std::collections::BTreeSet;

use super::ast::*;
use crate::query::quote::{ident, literal};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
}

/// A measurement's columns, as the catalog has them.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub tags: BTreeSet<String>,
    pub fields: BTreeSet<String>,
}

impl Columns {
    fn has(&self, name: &str) -> bool {
        self.tags.contains(name) || self.fields.contains(name)
    }
}

/// A function InfluxQL applies to a column's successive values, after any aggregate: the
/// series step computes it, SQL having no words for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// Change per `unit` of time between successive values (`non_negative`: falls dropped).
    Derivative { unit: Nanos, non_negative: bool },
    /// Change between successive values.
    Difference { non_negative: bool },
    /// Mean of the last N values.
    MovingAverage(usize),
    CumulativeSum,
    /// Time between successive values, in `unit`s.
    Elapsed { unit: Nanos },
}

/// A planned `SELECT`: the SQL, and what the series step needs to shape its answer.
#[derive(Debug, Clone)]
pub struct SelectPlan {
    pub sql: String,
    pub measurement: String,
    /// Names of the value columns (`__f0..`), as the answer shows them.
    pub columns: Vec<String>,
    /// For each value column, the transformation applied to it, if any.
    pub transforms: Vec<Option<Transform>>,
    /// The GROUP BY tags (`__g0..`), as the answer's series tags.
    pub group_tags: Vec<String>,
    pub aggregate: bool,
    pub group_time: Option<(Nanos, Nanos)>,
    pub fill: Fill,
    /// The time range the WHERE clause bounds (`[lower, upper]`, nanoseconds, inclusive).
    pub lower: Option<Nanos>,
    pub upper: Option<Nanos>,
    pub descending: bool,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub slimit: Option<u64>,
    pub soffset: Option<u64>,
}

fn timestamp(ns: Nanos) -> String {
    format!("arrow_cast({ns}, 'Timestamp(Nanosecond, None)')")
}

/// Functions InfluxDB has that this planner does not do yet: named in the error.
const NOT_YET: &[&str] = &["holt_winters", "count_hll"];

/// Selectors that answer several rows per group: `distinct(f)`, `top(f, N)`, `bottom(f, N)`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Many {
    Distinct,
    Top(u64),
    Bottom(u64),
    /// N points of each group, picked at random.
    Sample(u64),
    /// The most frequent value of each group (the earliest-seen among ties).
    Mode,
    /// The area under the points of each group (trapezoids), per `unit` of time.
    Integral(Nanos),
}

fn many_of(e: &Expr) -> Result<Option<(Many, &Expr)>, PlanError> {
    let Expr::Call { name, args } = e else { return Ok(None) };
    let n = || match args.get(1) {
        Some(Expr::Integer(n)) if *n >= 1 && args.len() == 2 => Ok(*n as u64),
        _ => Err(PlanError::Invalid(format!("{name}() takes a field and a count of at least 1, such as {name}(usage, 3)"))),
    };
    let many = match name.as_str() {
        "distinct" if args.len() == 1 => Many::Distinct,
        "distinct" => return Err(PlanError::Invalid("distinct() takes one field".into())),
        "top" => Many::Top(n()?),
        "bottom" => Many::Bottom(n()?),
        "sample" => Many::Sample(n()?),
        "mode" if args.len() == 1 => Many::Mode,
        "mode" => return Err(PlanError::Invalid("mode() takes one field".into())),
        "integral" => match args.get(1) {
            None => Many::Integral(1_000_000_000),
            Some(Expr::Duration(d)) if *d > 0 && args.len() == 2 => Many::Integral(*d),
            _ => return Err(PlanError::Invalid("integral()'s second argument is a positive duration, such as 1s".into())),
        },
        _ => return Ok(None),
    };
    match &args[0] {
        f @ Expr::Var(_) => Ok(Some((many, f))),
        _ => Err(PlanError::Unsupported(format!("{name}() of anything but a field is not supported yet"))),
    }
}

/// The tags a `GROUP BY` names (`*`: every tag of the measurement).
fn group_tags(s: &Select, cols: &Columns) -> Vec<String> {
    if s.group_all_tags {
        cols.tags.iter().cloned().collect()
    } else {
        s.group_tags.iter().filter(|t| *t != "time").cloned().collect()
    }
}

/// The grouped tags as the plan's `__g0..` columns (a tag the measurement lacks is null).
fn group_columns(group_tags: &[String], cols: &Columns) -> Vec<String> {
    group_tags
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{} AS __g{i}", if cols.tags.contains(t) { ident(t) } else { "CAST(NULL AS VARCHAR)".into() }))
        .collect()
}

/// The start of a row's `GROUP BY time(every, offset)` bucket, in nanoseconds.
fn bucket_sql(every: Nanos, offset: Nanos) -> String {
    format!("CAST(date_bin(INTERVAL '{every} nanoseconds', time, {}) AS BIGINT)", timestamp(offset))
}

/// A `SELECT` of one `distinct`, `top`, `bottom`, `sample`, `mode` or `integral`, each needing
/// more than one SQL aggregate can say. `top`, `bottom` and `sample` keep their points' times;
/// the others answer the bucket's (the range's start without `GROUP BY time`).
fn plan_many(s: &Select, cols: &Columns, now: Nanos, many: Many, field: &Expr, name: String) -> Result<SelectPlan, PlanError> {
    let group_tags = group_tags(s, cols);
    let value = value_sql(field, cols)?;
    let (mut lower, mut upper) = (None, None);
    let mut conditions = vec![format!("{value} IS NOT NULL")];
    if let Some(c) = &s.condition {
        conditions.push(condition_sql(c, cols, now, true, &mut lower, &mut upper)?);
    }
    let bucket = s.group_time.map(|(every, offset)| bucket_sql(every, offset));
    let groups = group_columns(&group_tags, cols);
    let group_names: Vec<String> = (0..group_tags.len()).map(|i| format!("__g{i}")).collect();
    let table = ident(&s.from);
    let where_ = conditions.join(" AND ");
    let sql = match many {
        Many::Distinct => {
            let time = bucket.unwrap_or_else(|| "0".into());
            let select: Vec<String> = std::iter::once(format!("{time} AS __t")).chain(groups).chain(std::iter::once(format!("{value} AS __f0"))).collect();
            let order: Vec<String> = group_names.iter().cloned().chain(["__t".to_string(), "__f0".to_string()]).collect();
            format!("SELECT DISTINCT {} FROM {table} WHERE {where_} ORDER BY {}", select.join(", "), order.join(", "))
        }
        Many::Mode | Many::Integral(_) => {
            // One value a group, computed over the group's points in a subquery.
            let time = bucket.clone().unwrap_or_else(|| "0".into());
            let mut partition: Vec<String> = group_names.clone();
            partition.push("__t".into());
            let over = format!("PARTITION BY {}", partition.join(", "));
            let inner_cols: Vec<String> = std::iter::once(format!("{time} AS __t")).chain(groups).collect();
            let keys = inner_cols.len();
            let key_list: Vec<String> = std::iter::once("__t".to_string()).chain(group_names.iter().cloned()).collect();
            match many {
                Many::Mode => format!(
                    "SELECT {keys_out}, __f0 FROM (SELECT {keys_out}, __f0, ROW_NUMBER() OVER ({over} ORDER BY __c DESC, __first ASC) AS __r FROM \
                         (SELECT {inner}, {value} AS __f0, COUNT(*) AS __c, MIN(time) AS __first FROM {table} WHERE {where_} GROUP BY {by})) \
                         WHERE __r = 1 ORDER BY {order}",
                    keys_out = key_list.join(", "),
                    inner = inner_cols.join(", "),
                    by = (1..=keys + 1).map(|i| i.to_string()).collect::<Vec<_>>().join(", "),
                    order = group_names.iter().cloned().chain(["__t".to_string()]).collect::<Vec<_>>().join(", "),
                ),
                _ => {
                    let Many::Integral(unit) = many else { unreachable!("matched above") };
                    format!(
                        "SELECT {keys_out}, COALESCE(SUM((__v + __pv) / 2.0 * CAST(__ts - __pts AS DOUBLE) / {unit}.0), 0.0) AS __f0 FROM \
                         (SELECT {keys_out}, __v, __ts, LAG(__v) OVER ({over} ORDER BY __ts, __v) AS __pv, LAG(__ts) OVER ({over} ORDER BY __ts, __v) AS __pts FROM \
                         (SELECT {inner}, CAST({value} AS DOUBLE) AS __v, CAST(time AS BIGINT) AS __ts FROM {table} WHERE {where_})) \
                         GROUP BY {keys_out} ORDER BY {order}",
                        keys_out = key_list.join(", "),
                        inner = inner_cols.join(", "),
                        order = group_names.iter().cloned().chain(["__t".to_string()]).collect::<Vec<_>>().join(", "),
                    )
                }
            }
        }
        Many::Top(n) | Many::Bottom(n) | Many::Sample(n) => {
            let dir = match many {
                Many::Top(_) => format!("{value} DESC"),
                Many::Bottom(_) => format!("{value} ASC"),
                _ => "random()".to_string(),
            };
            // The points' own times, GROUP BY time or not, as InfluxDB answers top and bottom.
            let time = "CAST(time AS BIGINT)".to_string();
            let mut partition: Vec<String> = group_tags.iter().map(|t| if cols.tags.contains(t) { ident(t) } else { "NULL".into() }).collect();
            if let Some(b) = &bucket {
                partition.push(b.clone());
            }
            let over = if partition.is_empty() { String::new() } else { format!("PARTITION BY {} ", partition.join(", ")) };
            let select: Vec<String> = std::iter::once(format!("{time} AS __t"))
                .chain(groups)
                .chain([format!("{value} AS __f0"), format!("ROW_NUMBER() OVER ({over}ORDER BY {dir}, time ASC) AS __r")])
                .collect();
            let order: Vec<String> = group_names.iter().cloned().chain(["__t".to_string()]).collect();
            let outer: Vec<String> = std::iter::once("__t".to_string()).chain(group_names.iter().cloned()).chain(["__f0".to_string()]).collect();
            format!(
                "SELECT {} FROM (SELECT {} FROM {table} WHERE {where_}) WHERE __r <= {n} ORDER BY {}",
                outer.join(", "),
                select.join(", "),
                order.join(", ")
            )
        }
    };
    Ok(SelectPlan {
        sql,
        measurement: s.from.clone(),
        columns: vec![name],
        transforms: vec![None],
        group_tags,
        // Distinct, mode and integral answer the range's start as their time without GROUP BY
        // time, as aggregates do.
        aggregate: matches!(many, Many::Distinct | Many::Mode | Many::Integral(_)) && s.group_time.is_none(),
        group_time: None,
        fill: Fill::None,
        lower,
        upper,
        descending: s.descending,
        limit: s.limit,
        offset: s.offset,
        slimit: s.slimit,
        soffset: s.soffset,
    })
}

/// A transformation call, split into what it does and the expression it applies to.
fn transform_of(e: &Expr) -> Result<Option<(Transform, &Expr)>, PlanError> {
    let Expr::Call { name, args } = e else { return Ok(None) };
    let unit = |i: usize| -> Result<Nanos, PlanError> {
        match args.get(i) {
            None => Ok(1_000_000_000),
            Some(Expr::Duration(d)) if *d > 0 => Ok(*d),
            Some(_) => Err(PlanError::Invalid(format!("{name}()'s second argument is a positive duration, such as 1s"))),
        }
    };
    let inner = || args.first().ok_or_else(|| PlanError::Invalid(format!("{name}() needs an argument")));
    let t = match name.as_str() {
        "derivative" => Transform::Derivative { unit: unit(1)?, non_negative: false },
        "non_negative_derivative" => Transform::Derivative { unit: unit(1)?, non_negative: true },
        "difference" => Transform::Difference { non_negative: false },
        "non_negative_difference" => Transform::Difference { non_negative: true },
        "cumulative_sum" => Transform::CumulativeSum,
        "elapsed" => Transform::Elapsed { unit: match args.get(1) { None => 1, Some(_) => unit(1)? } },
        "moving_average" => match args.get(1) {
            Some(Expr::Integer(n)) if *n >= 1 => Transform::MovingAverage(*n as usize),
            _ => return Err(PlanError::Invalid("moving_average() takes an expression and a window of at least 1 point".into())),
        },
        _ => return Ok(None),
    };
    let inner = inner()?;
    if transform_of(inner)?.is_some() {
        return Err(PlanError::Unsupported(format!("{name}() of another transformation is not supported yet")));
    }
    Ok(Some((t, inner)))
}

pub fn plan_select(s: &Select, cols: &Columns, now: Nanos) -> Result<SelectPlan, PlanError> {
    let manys: Vec<_> = s.fields.iter().map(|f| many_of(&f.expr)).collect::<Result<_, _>>()?;
    if let Some((i, Some((many, field)))) = manys.iter().enumerate().find(|(_, m)| m.is_some()) {
        if s.fields.len() != 1 {
            return Err(PlanError::Unsupported("distinct(), top() and bottom() are supported alone in a SELECT for now".into()));
        }
        let name = s.fields[i].alias.clone().unwrap_or_else(|| s.fields[i].expr.column_name());
        return plan_many(s, cols, now, *many, field, name);
    }
    // Each field's transformation (if any) and the expression under it.
    let inners: Vec<(Option<Transform>, &Expr)> = s
        .fields
        .iter()
        .map(|f| Ok(match transform_of(&f.expr)? { Some((t, e)) => (Some(t), e), None => (None, &f.expr) }))
        .collect::<Result<_, PlanError>>()?;
    let aggregate = inners.iter().any(|(_, e)| e.has_call());
    if aggregate && inners.iter().any(|(_, e)| !e.has_call() && !is_constant(e)) {
        return Err(PlanError::Invalid("mixing aggregate and non-aggregate queries is not supported".into()));
    }
    if s.group_time.is_some() && !aggregate {
        return Err(PlanError::Invalid("GROUP BY time requires an aggregate function".into()));
    }
    let group_tags = group_tags(s, cols);
    // The selected values: `*` expands to every field and tag (those grouped by excepted),
    // in name order, as InfluxDB does.
    let mut values: Vec<(String, String)> = Vec::new();
    let mut transforms: Vec<Option<Transform>> = Vec::new();
    for (f, (transform, inner)) in s.fields.iter().zip(&inners) {
        if let Some(t) = transform {
            if matches!(inner, Expr::Wildcard) {
                return Err(PlanError::Unsupported("a transformation of '*' is not supported yet; name the field".into()));
            }
            let name = f.alias.clone().unwrap_or_else(|| f.expr.column_name());
            values.push((name, value_sql(inner, cols)?));
            transforms.push(Some(*t));
            continue;
        }
        let before = values.len();
        match &f.expr {
            Expr::Wildcard => {
                let all: BTreeSet<&String> = cols.fields.iter().chain(cols.tags.iter()).collect();
                for c in all.into_iter().filter(|c| !group_tags.contains(c)) {
                    values.push((c.clone(), ident(c)));
                }
            }
            Expr::Call { name, args } if args.first() == Some(&Expr::Wildcard) => {
                for field in &cols.fields {
                    let e = Expr::Call { name: name.clone(), args: std::iter::once(Expr::Var(field.clone())).chain(args[1..].iter().cloned()).collect() };
                    values.push((format!("{name}_{field}"), value_sql(&e, cols)?));
                }
            }
            e => {
                let name = f.alias.clone().unwrap_or_else(|| e.column_name());
                values.push((name, value_sql(e, cols)?));
            }
        }
        transforms.resize(transforms.len() + values.len() - before, None);
    }
    if values.is_empty() {
        return Err(PlanError::Invalid(format!("measurement '{}' has no fields to select", s.from)));
    }
    // Later duplicates are renamed `name_1`, `name_2`, as InfluxDB does.
    let mut seen: Vec<String> = Vec::new();
    for (name, _) in values.iter_mut() {
        let base = name.clone();
        let mut n = 0;
        while seen.contains(name) {
            n += 1;
            *name = format!("{base}_{n}");
        }
        seen.push(name.clone());
    }

    let (mut lower, mut upper) = (None, None);
    let condition = match &s.condition {
        Some(c) => Some(condition_sql(c, cols, now, true, &mut lower, &mut upper)?),
        None => None,
    };
    let mut select = Vec::new();
    let time_expr = match (s.group_time, aggregate) {
        (Some((every, offset)), _) => bucket_sql(every, offset),
        (None, true) => "0".to_string(),
        (None, false) => "CAST(time AS BIGINT)".to_string(),
    };
    select.push(format!("{time_expr} AS __t"));
    select.extend(group_columns(&group_tags, cols));
    for (i, (_, e)) in values.iter().enumerate() {
        select.push(format!("{e} AS __f{i}"));
    }
    if aggregate {
        // How many rows each group saw: an aggregate over no rows is no answer in InfluxQL
        // (SQL answers COUNT 0 and NULLs), and the series step drops those.
        select.push("COUNT(*) AS __n".to_string());
    }
    let mut sql = format!("SELECT {} FROM {}", select.join(", "), ident(&s.from));
    let mut conditions: Vec<String> = condition.into_iter().collect();
    if !aggregate {
        // A raw row shows only where a selected field has a value: selecting tags alone, or
        // fields the measurement lacks, answers nothing, as in InfluxDB.
        let mut fields = BTreeSet::new();
        for f in &s.fields {
            referenced_fields(&f.expr, cols, &mut fields);
        }
        conditions.push(if fields.is_empty() {
            "FALSE".to_string()
        } else {
            format!("({})", fields.iter().map(|f| format!("{} IS NOT NULL", ident(f))).collect::<Vec<_>>().join(" OR "))
        });
    }
    if !conditions.is_empty() {
        sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
    }
    let mut group_by: Vec<String> = Vec::new();
    if aggregate {
        if s.group_time.is_some() {
            group_by.push("__t".into());
        }
        group_by.extend((0..group_tags.len()).map(|i| format!("__g{i}")));
        if !group_by.is_empty() {
            sql.push_str(&format!(" GROUP BY {}", group_by.join(", ")));
        }
    }
    let mut order: Vec<String> = (0..group_tags.len()).map(|i| format!("__g{i}")).collect();
    order.push(format!("__t {}", if s.descending { "DESC" } else { "ASC" }));
    sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
    Ok(SelectPlan {
        sql,
        measurement: s.from.clone(),
        columns: values.into_iter().map(|(n, _)| n).collect(),
        transforms,
        group_tags,
        aggregate,
        group_time: s.group_time,
        fill: s.fill,
        lower,
        upper,
        descending: s.descending,
        limit: s.limit,
        offset: s.offset,
        slimit: s.slimit,
        soffset: s.soffset,
    })
}

/// The measurement's fields an expression reads (`*`: all of them).
fn referenced_fields(e: &Expr, cols: &Columns, out: &mut BTreeSet<String>) {
    match e {
        Expr::Wildcard => out.extend(cols.fields.iter().cloned()),
        Expr::Var(v) if cols.fields.contains(v) => {
            out.insert(v.clone());
        }
        Expr::Binary { left, right, .. } => {
            referenced_fields(left, cols, out);
            referenced_fields(right, cols, out);
        }
        Expr::Neg(e) => referenced_fields(e, cols, out),
        Expr::Call { args, .. } => args.iter().for_each(|a| referenced_fields(a, cols, out)),
        _ => {}
    }
}

fn is_constant(e: &Expr) -> bool {
    matches!(e, Expr::Integer(_) | Expr::Float(_) | Expr::Str(_) | Expr::Bool(_))
}

/// A selected expression as SQL.
fn value_sql(e: &Expr, cols: &Columns) -> Result<String, PlanError> {
    Ok(match e {
        Expr::Var(v) if v.eq_ignore_ascii_case("time") => return Err(PlanError::Invalid("time is selected on its own; name a field".into())),
        Expr::Var(v) if cols.has(v) => ident(v),
        // InfluxDB answers null for a field the measurement lacks.
        Expr::Var(_) => "NULL".to_string(),
        Expr::Integer(n) => n.to_string(),
        Expr::Float(f) => format!("{f:?}"),
        Expr::Str(s) => literal(s),
        Expr::Bool(b) => b.to_string(),
        Expr::Neg(e) => format!("(- {})", value_sql(e, cols)?),
        Expr::Binary { op, left, right } => {
            let (l, r) = (value_sql(left, cols)?, value_sql(right, cols)?);
            match op {
                BinOp::Add => format!("({l} + {r})"),
                BinOp::Sub => format!("({l} - {r})"),
                BinOp::Mul => format!("({l} * {r})"),
                // InfluxQL divides as floats.
                BinOp::Div => format!("(CAST({l} AS DOUBLE) / {r})"),
                _ => return Err(PlanError::Invalid("comparisons belong in WHERE, not in the selected fields".into())),
            }
        }
        Expr::Call { name, args } => call_sql(name, args, cols)?,
        Expr::Wildcard => return Err(PlanError::Invalid("'*' cannot be used in an expression".into())),
        Expr::Regex(_) | Expr::Duration(_) | Expr::Now => return Err(PlanError::Invalid("this expression cannot be selected".into())),
    })
}

fn call_sql(name: &str, args: &[Expr], cols: &Columns) -> Result<String, PlanError> {
    if NOT_YET.contains(&name) {
        return Err(PlanError::Unsupported(format!("the InfluxQL function {name}() is not supported yet")));
    }
    let arg = |i: usize| -> Result<String, PlanError> {
        let e = args.get(i).ok_or_else(|| PlanError::Invalid(format!("{name}() needs an argument")))?;
        if e.has_call() {
            return Err(PlanError::Unsupported(format!("a function inside {name}() is not supported yet")));
        }
        value_sql(e, cols)
    };
    let one = |sql: &str| -> Result<String, PlanError> {
        if args.len() != 1 {
            return Err(PlanError::Invalid(format!("{name}() takes one argument, not {}", args.len())));
        }
        let a = arg(0)?;
        Ok(sql.replace("{}", &a))
    };
    if let (Some(Expr::Call { name: inner, args: inner_args }), "count") = (args.first(), name) {
        if inner == "distinct" && inner_args.len() == 1 && args.len() == 1 {
            return Ok(format!("COUNT(DISTINCT {})", value_sql(&inner_args[0], cols)?));
        }
    }
    match name {
        "count" => one("COUNT({})"),
        "mean" => one("AVG({})"),
        "sum" => one("SUM({})"),
        "min" => one("MIN({})"),
        "max" => one("MAX({})"),
        "median" => one("median({})"),
        "spread" => one("(MAX({}) - MIN({}))"),
        "stddev" => one("stddev({})"),
        "first" => one("first_value({} ORDER BY time ASC) FILTER (WHERE {} IS NOT NULL)"),
        "last" => one("last_value({} ORDER BY time ASC) FILTER (WHERE {} IS NOT NULL)"),
        "percentile" => {
            if args.len() != 2 {
                return Err(PlanError::Invalid("percentile() takes a field and a percentile (0 to 100)".into()));
            }
            let p = match &args[1] {
                Expr::Integer(n) => *n as f64,
                Expr::Float(f) => *f,
                _ => return Err(PlanError::Invalid("percentile()'s second argument must be a number".into())),
            };
            if !(0.0..=100.0).contains(&p) {
                return Err(PlanError::Invalid("percentile() takes a percentile from 0 to 100".into()));
            }
            // InfluxDB's nearest rank: the value at 1-based position floor(n * p / 100 + 0.5) of
            // the sorted values (none below it).
            let a = arg(0)?;
            Ok(format!(
                "array_element(array_agg({a} ORDER BY {a} ASC) FILTER (WHERE {a} IS NOT NULL), CAST(floor(COUNT({a}) * {p:?} / 100.0 + 0.5) AS BIGINT))"
            ))
        }
        _ => Err(PlanError::Unsupported(format!("unknown InfluxQL function {name}()"))),
    }
}

/// A time as InfluxQL writes one in WHERE: an RFC 3339 string, an integer (nanoseconds), a
/// duration literal since the epoch, or `now()` plus or minus durations.
fn time_value(e: &Expr, now: Nanos) -> Option<Nanos> {
    match e {
        Expr::Integer(n) => Some(*n),
        Expr::Duration(d) => Some(*d),
        Expr::Now => Some(now),
        Expr::Str(s) => crate::time::parse_instant(s).ok(),
        Expr::Binary { op: BinOp::Add, left, right } => Some(time_value(left, now)?.saturating_add(time_value(right, now)?)),
        Expr::Binary { op: BinOp::Sub, left, right } => Some(time_value(left, now)?.saturating_sub(time_value(right, now)?)),
        _ => None,
    }
}

/// A comparison operator as SQL writes it.
fn comparison(op: BinOp) -> &'static str {
    match op {
        BinOp::Eq => "=",
        BinOp::NotEq => "<>",
        BinOp::Lt => "<",
        BinOp::LtEq => "<=",
        BinOp::Gt => ">",
        _ => ">=",
    }
}

fn is_time(e: &Expr) -> bool {
    matches!(e, Expr::Var(v) if v.eq_ignore_ascii_case("time"))
}

/// The WHERE clause as SQL. `top` is true along the top-level AND chain, where a time bound
/// also narrows the range that empty buckets are filled over.
/// A `WHERE` condition on a measurement of columns `cols`, as SQL (for `SHOW` statements).
pub fn where_sql(e: &Expr, cols: &Columns, now: Nanos) -> Result<String, PlanError> {
    condition_sql(e, cols, now, false, &mut None, &mut None)
}

fn condition_sql(e: &Expr, cols: &Columns, now: Nanos, top: bool, lower: &mut Option<Nanos>, upper: &mut Option<Nanos>) -> Result<String, PlanError> {
    let Expr::Binary { op, left, right } = e else {
        return match e {
            Expr::Bool(b) => Ok(b.to_string()),
            _ => Err(PlanError::Invalid("WHERE needs a condition, such as host = 'a' or time > now() - 1h".into())),
        };
    };
    match op {
        BinOp::And => {
            let l = condition_sql(left, cols, now, top, lower, upper)?;
            let r = condition_sql(right, cols, now, top, lower, upper)?;
            Ok(format!("({l} AND {r})"))
        }
        BinOp::Or => {
            let l = condition_sql(left, cols, now, false, lower, upper)?;
            let r = condition_sql(right, cols, now, false, lower, upper)?;
            Ok(format!("({l} OR {r})"))
        }
        BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq if is_time(left) || is_time(right) => {
            // Put time on the left.
            let (op, other) = if is_time(left) {
                (*op, right.as_ref())
            } else {
                let flipped = match op {
                    BinOp::Lt => BinOp::Gt,
                    BinOp::LtEq => BinOp::GtEq,
                    BinOp::Gt => BinOp::Lt,
                    BinOp::GtEq => BinOp::LtEq,
                    o => *o,
                };
                (flipped, left.as_ref())
            };
            let t = time_value(other, now)
                .ok_or_else(|| PlanError::Invalid("time is compared with an RFC 3339 string, an integer of nanoseconds, or now() - DURATION".into()))?;
            if top {
                let lo = |v: Nanos, lower: &mut Option<Nanos>| *lower = Some(lower.map_or(v, |l: Nanos| l.max(v)));
                let hi = |v: Nanos, upper: &mut Option<Nanos>| *upper = Some(upper.map_or(v, |u: Nanos| u.min(v)));
                match op {
                    BinOp::Gt => lo(t.saturating_add(1), lower),
                    BinOp::GtEq => lo(t, lower),
                    BinOp::Lt => hi(t.saturating_sub(1), upper),
                    BinOp::LtEq => hi(t, upper),
                    BinOp::Eq => {
                        lo(t, lower);
                        hi(t, upper);
                    }
                    _ => {}
                }
            }
            let sym = comparison(op);
            Ok(format!("time {sym} {}", timestamp(t)))
        }
        BinOp::RegexMatch | BinOp::RegexNotMatch => {
            let Expr::Regex(re) = right.as_ref() else { return Err(PlanError::Invalid("=~ and !~ take a regular expression /.../".into())) };
            let col = match left.as_ref() {
                Expr::Var(v) if cols.has(v) => format!("CAST({} AS VARCHAR)", ident(v)),
                // A tag the measurement lacks is the empty string.
                Expr::Var(_) => "''".to_string(),
                _ => return Err(PlanError::Invalid("=~ and !~ compare a tag or field with a regular expression".into())),
            };
            let sym = if *op == BinOp::RegexMatch { "~" } else { "!~" };
            Ok(format!("(COALESCE({col}, '') {sym} {})", literal(re)))
        }
        BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq => {
            let side = |e: &Expr| -> Result<String, PlanError> {
                match e {
                    // InfluxDB reads a missing tag as the empty string.
                    Expr::Var(v) if cols.tags.contains(v) => Ok(format!("COALESCE({}, '')", ident(v))),
                    Expr::Var(v) if !cols.has(v) => Ok("NULL".to_string()),
                    e => value_sql(e, cols),
                }
            };
            let sym = comparison(*op);
            Ok(format!("({} {sym} {})", side(left)?, side(right)?))
        }
        _ => Err(PlanError::Invalid("WHERE needs a condition, such as host = 'a' or time > now() - 1h".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::influxql::parser::parse;

    fn cols() -> Columns {
        Columns { tags: ["host", "region"].map(String::from).into(), fields: ["usage", "idle"].map(String::from).into() }
    }

    fn plan(q: &str) -> Result<SelectPlan, PlanError> {
        let Statement::Select(s) = parse(q).unwrap().remove(0) else { panic!("not a select") };
        plan_select(&s, &cols(), 1_000_000_000_000)
    }

    #[test]
    fn a_grouped_mean_becomes_date_bin_and_group_by() {
        let p = plan("SELECT mean(usage), max(usage) FROM cpu WHERE host =~ /a.*/ AND time >= now() - 10s AND time < now() GROUP BY time(5s), host fill(0)").unwrap();
        assert!(p.sql.contains("date_bin(INTERVAL '5000000000 nanoseconds', time"), "{}", p.sql);
        assert!(p.sql.contains("AVG(\"usage\") AS __f0") && p.sql.contains("MAX(\"usage\") AS __f1"), "{}", p.sql);
        assert!(p.sql.contains("GROUP BY __t, __g0") && p.sql.contains("ORDER BY __g0, __t ASC"), "{}", p.sql);
        assert!(p.sql.contains("~ 'a.*'"), "{}", p.sql);
        assert_eq!(p.columns, vec!["mean", "max"]);
        assert_eq!((p.lower, p.upper), (Some(990_000_000_000), Some(999_999_999_999)));
        assert_eq!(p.fill, Fill::Value(0.0));
    }

    #[test]
    fn star_expands_to_fields_and_tags_in_name_order() {
        let p = plan("SELECT * FROM cpu GROUP BY host").unwrap();
        assert_eq!(p.columns, vec!["idle", "region", "usage"], "the grouped tag leaves the columns");
        assert_eq!(p.group_tags, vec!["host"]);
        assert!(!p.aggregate);
        assert!(p.sql.contains("CAST(time AS BIGINT) AS __t"), "{}", p.sql);
    }

    #[test]
    fn what_is_not_done_yet_is_named() {
        for (q, want) in [
            ("SELECT holt_winters(usage, 1, 1) FROM cpu", "holt_winters() is not supported yet"),
            ("SELECT top(usage, 3), mean(usage) FROM cpu", "alone in a SELECT"),
            ("SELECT top(usage) FROM cpu", "a count of at least 1"),
            ("SELECT derivative(derivative(usage)) FROM cpu", "another transformation"),
            ("SELECT moving_average(usage) FROM cpu", "window"),
            ("SELECT usage, mean(usage) FROM cpu", "mixing aggregate"),
            ("SELECT usage FROM cpu GROUP BY time(1m)", "requires an aggregate"),
            ("SELECT nosuch(usage) FROM cpu", "unknown InfluxQL function nosuch()"),
        ] {
            assert!(plan(q).unwrap_err().to_string().contains(want), "{q}");
        }
    }
}
