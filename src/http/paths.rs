//! Every route path the server answers, in one place.

pub const WRITE_V3: &str = "/api/v3/write_lp";
pub const WRITE_V2: &str = "/api/v2/write";
pub const WRITE_V1: &str = "/write";
pub const QUERY_SQL: &str = "/api/v3/query_sql";
pub const CONFIGURE_DATABASE: &str = "/api/v3/configure/database";
pub const CONFIGURE_TABLE: &str = "/api/v3/configure/table";
pub const HEALTH: &str = "/health";
pub const PING: &str = "/ping";
pub const METRICS: &str = "/metrics";
