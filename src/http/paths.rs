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
/// Request triggers: `/api/v3/engine/PATH`.
pub const ENGINE_PREFIX: &str = "/api/v3/engine/";
