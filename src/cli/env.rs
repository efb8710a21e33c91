//! `influxdb3`'s environment variables, read as the `WEIR_*` ones they match, so scripts and
//! container setups written for InfluxDB 3 work unchanged.
//!
//! It only copies variables at start-up, before any thread exists; it never overrides a
//! `WEIR_*` variable that is set.

/// `(ours, influxdb3's)`: each flag reads `ours`; `influxdb3's` fills it when `ours` is unset.
pub const ALIASES: &[(&str, &str)] = &[
    ("WEIR_HOST_URL", "INFLUXDB3_HOST_URL"),
    ("WEIR_AUTH_TOKEN", "INFLUXDB3_AUTH_TOKEN"),
    ("WEIR_DATABASE_NAME", "INFLUXDB3_DATABASE_NAME"),
    ("WEIR_NODE_ID", "INFLUXDB3_NODE_IDENTIFIER_PREFIX"),
    ("WEIR_OBJECT_STORE", "INFLUXDB3_OBJECT_STORE"),
    ("WEIR_DATA_DIR", "INFLUXDB3_DB_DIR"),
    ("WEIR_PLUGIN_DIR", "INFLUXDB3_PLUGIN_DIR"),
    ("WEIR_HTTP_BIND", "INFLUXDB3_HTTP_BIND_ADDR"),
    ("WEIR_BUCKET", "INFLUXDB3_BUCKET"),
    ("WEIR_WAL_FLUSH_INTERVAL", "INFLUXDB3_WAL_FLUSH_INTERVAL"),
    ("WEIR_GEN1_DURATION", "INFLUXDB3_GEN1_DURATION"),
    ("WEIR_WITHOUT_AUTH", "INFLUXDB3_START_WITHOUT_AUTH"),
    ("WEIR_ADMIN_TOKEN_FILE", "INFLUXDB3_ADMIN_TOKEN_FILE"),
    ("WEIR_DISABLE_AUTHZ", "INFLUXDB3_DISABLE_AUTHZ"),
    ("WEIR_PLUGIN_REPO", "INFLUXDB3_PLUGIN_REPO"),
    ("WEIR_MAX_HTTP_REQUEST_SIZE", "INFLUXDB3_MAX_HTTP_REQUEST_SIZE"),
    ("WEIR_DISABLE_PACKAGE_MANAGEMENT", "INFLUXDB3_PACKAGE_MANAGER_DISABLED"),
    ("WEIR_LOG_FILTER", "LOG_FILTER"),
];

/// Copies each set `influxdb3` variable to its unset `WEIR_*` twin. Call it first in `main`,
/// while the process has one thread (changing the environment races with threads reading it).
pub fn adopt_influxdb3_variables() {
    for (ours, theirs) in ALIASES {
        if std::env::var_os(ours).is_some() {
            continue;
        }
        if let Some(v) = std::env::var_os(theirs).filter(|v| !v.is_empty()) {
            std::env::set_var(ours, v);
        }
    }
}
