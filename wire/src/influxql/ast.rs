//! InfluxQL statements as the parser builds them: only data, no behaviour beyond display.

/// A duration in nanoseconds.
pub type Nanos = i64;

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Select(Box<Select>),
    ShowDatabases,
    ShowMeasurements { filter: Option<NameFilter>, limit: Option<u64> },
    ShowTagKeys { from: Option<String> },
    /// `WHERE` narrows the values to those of rows it keeps (Grafana's ad hoc filters).
    ShowTagValues { from: Option<String>, keys: NameFilter, condition: Option<Expr> },
    ShowFieldKeys { from: Option<String> },
    ShowSeries { from: Option<String> },
    ShowRetentionPolicies,
    CreateDatabase(String),
    DropDatabase(String),
}

impl Statement {
    /// The statement's kind, for errors ("SHOW USERS is not supported").
    pub fn kind(&self) -> &'static str {
        match self {
            Statement::Select(_) => "SELECT",
            Statement::ShowDatabases => "SHOW DATABASES",
            Statement::ShowMeasurements { .. } => "SHOW MEASUREMENTS",
            Statement::ShowTagKeys { .. } => "SHOW TAG KEYS",
            Statement::ShowTagValues { .. } => "SHOW TAG VALUES",
            Statement::ShowFieldKeys { .. } => "SHOW FIELD KEYS",
            Statement::ShowSeries { .. } => "SHOW SERIES",
            Statement::ShowRetentionPolicies => "SHOW RETENTION POLICIES",
            Statement::CreateDatabase(_) => "CREATE DATABASE",
            Statement::DropDatabase(_) => "DROP DATABASE",
        }
    }
}

/// Names picked by `= name`, `=~ /re/`, `IN (a, b)` (or `!=`, `!~`).
#[derive(Debug, Clone, PartialEq)]
pub enum NameFilter {
    Eq(String),
    NotEq(String),
    Regex(String),
    NotRegex(String),
    In(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub fields: Vec<Field>,
    pub from: String,
    pub condition: Option<Expr>,
    /// `GROUP BY time(every, offset)`.
    pub group_time: Option<(Nanos, Nanos)>,
    pub group_tags: Vec<String>,
    /// `GROUP BY *`: every tag.
    pub group_all_tags: bool,
    pub fill: Fill,
    pub descending: bool,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub slimit: Option<u64>,
    pub soffset: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub expr: Expr,
    pub alias: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fill {
    Null,
    None,
    Previous,
    Linear,
    Value(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    RegexMatch,
    RegexNotMatch,
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A field, tag or `time`; the `::type` suffix is kept out.
    Var(String),
    /// `*` in a field list or as a function argument.
    Wildcard,
    Integer(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Regex(String),
    Duration(Nanos),
    Now,
    Call { name: String, args: Vec<Expr> },
    Binary { op: BinOp, left: Box<Expr>, right: Box<Expr> },
    Neg(Box<Expr>),
}

impl Expr {
    /// The name InfluxDB gives a selected expression: the field, or the function's name.
    pub fn column_name(&self) -> String {
        match self {
            Expr::Var(v) => v.clone(),
            Expr::Call { name, .. } => name.clone(),
            Expr::Binary { left, right, .. } => {
                let (l, r) = (left.column_name(), right.column_name());
                match (l.is_empty(), r.is_empty()) {
                    (false, false) => format!("{l}_{r}"),
                    (false, true) => l,
                    _ => r,
                }
            }
            Expr::Neg(e) => e.column_name(),
            _ => String::new(),
        }
    }

    /// Whether it calls an aggregate or selector anywhere.
    pub fn has_call(&self) -> bool {
        match self {
            Expr::Call { .. } => true,
            Expr::Binary { left, right, .. } => left.has_call() || right.has_call(),
            Expr::Neg(e) => e.has_call(),
            _ => false,
        }
    }
}
