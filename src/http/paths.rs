//! Every route path the server answers, in one place.

pub const WRITE_V3: &str = "/api/v3/write_lp";
pub const WRITE_V2: &str = "/api/v2/write";
pub const WRITE_V1: &str = "/write";
pub const QUERY_SQL: &str = "/api/v3/query_sql";
/// InfluxQL, answered as rows in `format` (as `query_sql`).
pub const QUERY_INFLUXQL: &str = "/api/v3/query_influxql";
/// InfluxQL as InfluxDB 1.x serves it (`results` and `series`).
pub const QUERY_V1: &str = "/query";
pub const CONFIGURE_DATABASE: &str = "/api/v3/configure/database";
pub const CONFIGURE_TABLE: &str = "/api/v3/configure/table";
pub const HEALTH: &str = "/health";
pub const PING: &str = "/ping";
pub const METRICS: &str = "/metrics";
pub const PPROF_PROFILE: &str = "/debug/pprof/profile";
pub const PPROF_FLAMEGRAPH: &str = "/debug/pprof/flamegraph";
pub const TRIGGER: &str = "/api/v3/configure/processing_engine_trigger";
pub const TRIGGER_ENABLE: &str = "/api/v3/configure/processing_engine_trigger/enable";
pub const TRIGGER_DISABLE: &str = "/api/v3/configure/processing_engine_trigger/disable";
/// Replay a WAL trigger over a stored time range (POST starts it, GET `?id=N` reads progress).
pub const TRIGGER_REPLAY: &str = "/api/v3/configure/processing_engine_trigger/replay";
pub const PLUGIN_TEST_WAL: &str = "/api/v3/plugin_test/wal";
pub const PLUGIN_TEST_SCHEDULE: &str = "/api/v3/plugin_test/schedule";
pub const INSTALL_PACKAGES: &str = "/api/v3/configure/plugin_environment/install_packages";
pub const INSTALL_REQUIREMENTS: &str = "/api/v3/configure/plugin_environment/install_requirements";
/// Plugin code sent over the API (POST and PUT both write a file, creating or replacing it).
pub const PLUGIN_FILES: &str = "/api/v3/plugins/files";
/// A package plugin's files, replacing the directory as a whole.
pub const PLUGIN_DIRECTORY: &str = "/api/v3/plugins/directory";
/// Request triggers: `/api/v3/engine/PATH`.
pub const ENGINE_PREFIX: &str = "/api/v3/engine/";
/// Makes the operator token (once; anyone may while none exists).
pub const TOKEN_ADMIN: &str = "/api/v3/configure/token/admin";
pub const TOKEN_ADMIN_REGENERATE: &str = "/api/v3/configure/token/admin/regenerate";
pub const TOKEN_NAMED_ADMIN: &str = "/api/v3/configure/token/named_admin";
/// Resource tokens, at the path InfluxDB 3 Enterprise serves them.
pub const TOKEN_RESOURCE: &str = "/api/v3/enterprise/configure/token";
/// DELETE `?token_name=N` removes a token; GET lists them (without their text).
pub const TOKEN: &str = "/api/v3/configure/token";

/// Who may call a route. [`crate::http`] checks it before reading the body; routes scoped to a
/// database check the database once the request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// Anyone: making the operator token, which the handler refuses once it exists.
    Bootstrap,
    /// An admin token.
    Admin,
    /// A token that may read the database the request names.
    ReadDb,
    /// A token that may write to the database the request names (for request triggers, the
    /// trigger's database).
    WriteDb,
    /// Server information: an admin token or a `system` read token (or none with
    /// `--disable-authz metrics`).
    System,
}

pub struct Route {
    pub path: &'static str,
    pub methods: &'static [&'static str],
    pub access: Access,
}

const fn r(path: &'static str, methods: &'static [&'static str], access: Access) -> Route {
    Route { path, methods, access }
}

/// Every route and who may call it. A path missing here needs an admin token, so a route added
/// without a line here is closed, not open; `tests/auth.rs` walks this table.
pub const ROUTES: &[Route] = &[
    r(HEALTH, &["GET", "HEAD"], Access::Public),
    r(PING, &["GET", "POST", "HEAD"], Access::Public),
    r(WRITE_V3, &["POST"], Access::WriteDb),
    r(WRITE_V2, &["POST"], Access::WriteDb),
    r(WRITE_V1, &["POST"], Access::WriteDb),
    r(QUERY_SQL, &["GET", "POST"], Access::ReadDb),
    r(QUERY_INFLUXQL, &["GET", "POST"], Access::ReadDb),
    r(QUERY_V1, &["GET", "POST"], Access::ReadDb),
    r(METRICS, &["GET"], Access::System),
    r(PPROF_PROFILE, &["GET"], Access::Admin),
    r(PPROF_FLAMEGRAPH, &["GET"], Access::Admin),
    r(CONFIGURE_DATABASE, &["GET", "POST", "PUT", "DELETE"], Access::Admin),
    r(CONFIGURE_TABLE, &["POST", "DELETE"], Access::Admin),
    r(TRIGGER, &["POST", "PUT", "DELETE"], Access::Admin),
    r(TRIGGER_ENABLE, &["POST"], Access::Admin),
    r(TRIGGER_DISABLE, &["POST"], Access::Admin),
    r(TRIGGER_REPLAY, &["GET", "POST"], Access::Admin),
    r(PLUGIN_TEST_WAL, &["POST"], Access::Admin),
    r(PLUGIN_TEST_SCHEDULE, &["POST"], Access::Admin),
    r(INSTALL_PACKAGES, &["POST"], Access::Admin),
    r(INSTALL_REQUIREMENTS, &["POST"], Access::Admin),
    r(PLUGIN_FILES, &["POST", "PUT"], Access::Admin),
    r(PLUGIN_DIRECTORY, &["PUT"], Access::Admin),
    r(TOKEN_ADMIN, &["POST"], Access::Bootstrap),
    r(TOKEN_ADMIN_REGENERATE, &["POST"], Access::Admin),
    r(TOKEN_NAMED_ADMIN, &["POST"], Access::Admin),
    r(TOKEN_RESOURCE, &["POST"], Access::Admin),
    r(TOKEN, &["GET", "DELETE"], Access::Admin),
    // Request triggers: every path under the prefix.
    r(ENGINE_PREFIX, &["GET", "POST"], Access::WriteDb),
];

/// Who may call `path`.
pub fn access(path: &str) -> Access {
    if path.starts_with(ENGINE_PREFIX) {
        return Access::WriteDb;
    }
    ROUTES.iter().find(|r| r.path == path).map_or(Access::Admin, |r| r.access)
}

/// Routes whose v1 clients send the token as `?p=`.
pub fn takes_v1_credentials(path: &str) -> bool {
    path == WRITE_V1 || path == QUERY_V1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unlisted_path_needs_an_admin_and_request_triggers_their_database() {
        assert_eq!(access("/api/v3/some_new_route"), Access::Admin);
        assert_eq!(access("/api/v3/engine/hook/x"), Access::WriteDb);
        assert_eq!(access(HEALTH), Access::Public);
        let mut paths: Vec<_> = ROUTES.iter().map(|r| r.path).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), ROUTES.len(), "a path is listed twice");
    }
}
