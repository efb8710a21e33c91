//! The command line's shape: every command, flag and environment variable of `weir`, as clap
//! derives them. Only definitions live here; the handlers are in the sibling modules.
//!
//! Each variable is `WEIR_*`; `influxdb3`'s `INFLUXDB3_*` names fill them too ([`super::env`]).

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::config::ServeConfig;

#[derive(Debug, Parser)]
#[command(name = "weir", version, about = "A time-series database with an embedded Python processing engine")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the server is, for client commands.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The server's URL.
    #[arg(short = 'H', long = "host", env = "WEIR_HOST_URL", default_value = "http://127.0.0.1:8181", global = true)]
    pub host: String,
    /// Auth token, sent as `Authorization: Bearer TOKEN` (also read from INFLUXDB3_AUTH_TOKEN).
    #[arg(long, env = "WEIR_AUTH_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

/// The database a command works on.
#[derive(Debug, Clone, Args)]
pub struct DbArg {
    /// The database (also read from INFLUXDB3_DATABASE_NAME).
    #[arg(short = 'd', long = "database", env = "WEIR_DATABASE_NAME")]
    pub database: String,
}

/// A trigger's name, given as the last argument or with `--trigger-name` (influxdb3's commands
/// differ in which they take).
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("trigger").required(true).args(["name", "trigger_name"])))]
pub struct TriggerName {
    /// The trigger.
    pub name: Option<String>,
    /// The trigger (the same as giving it last).
    #[arg(long = "trigger-name")]
    pub trigger_name: Option<String>,
}

impl TriggerName {
    pub fn get(&self) -> &str {
        self.name.as_deref().or(self.trigger_name.as_deref()).unwrap_or_default()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeConfig>),
    /// Write line protocol from arguments, a file (`-f`) or stdin.
    #[command(visible_alias = "w")]
    Write(WriteArgs),
    /// Run a SQL query.
    #[command(visible_alias = "q")]
    Query(QueryArgs),
    /// Create a database, table, trigger or token.
    Create {
        #[command(subcommand)]
        what: CreateCommand,
    },
    /// Change a database's retention period, or a trigger's plugin, arguments or settings.
    Update {
        #[command(subcommand)]
        what: UpdateCommand,
    },
    /// Delete a database, table, trigger or token.
    Delete {
        #[command(subcommand)]
        what: DeleteCommand,
    },
    /// List databases, tokens, plugins, retention periods or system tables.
    Show {
        #[command(subcommand)]
        what: ShowCommand,
    },
    /// Enable a trigger.
    Enable {
        #[command(subcommand)]
        what: ToggleCommand,
    },
    /// Disable a trigger (its queued events are dropped).
    Disable {
        #[command(subcommand)]
        what: ToggleCommand,
    },
    /// Run a plugin once without writing anything.
    Test {
        #[command(subcommand)]
        what: TestCommand,
    },
    /// Install Python packages into the plugin environment.
    Install {
        #[command(subcommand)]
        what: InstallCommand,
    },
    /// Run a WAL trigger's plugin over stored rows of a time range (backfill).
    Replay {
        #[command(subcommand)]
        what: ReplayCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Calls the trigger's plugin with the rows of `[--start, --end)`, in time order, in calls
    /// of at most the server's --trigger-max-batch-rows; shows progress until done.
    Trigger {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        db: DbArg,
        /// First instant, included: RFC 3339 (2026-01-02T03:04:05Z) or nanoseconds.
        #[arg(long)]
        start: String,
        /// Last instant, excluded.
        #[arg(long)]
        end: String,
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateTriggerArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub db: DbArg,
    /// table:NAME, all_tables, every:DURATION, cron:EXPRESSION or request:PATH.
    #[arg(long = "trigger-spec")]
    pub trigger_spec: String,
    /// The plugin: a file or package directory under the server's plugin directory, a `gh:`
    /// name, or with --upload a local file or directory (`--plugin-filename` is the older name).
    #[arg(short = 'p', long = "path", alias = "plugin-filename")]
    pub path: String,
    /// Send the local --path to the server's plugin directory first.
    #[arg(long)]
    pub upload: bool,
    /// Arguments as k=v,k2=v2 (split on every comma, as influxdb3 does).
    #[arg(long = "trigger-arguments", value_delimiter = ',')]
    pub trigger_arguments: Vec<String>,
    /// Arguments as a JSON object, for values that hold commas.
    #[arg(long = "trigger-arguments-json")]
    pub trigger_arguments_json: Option<String>,
    /// Let calls overlap instead of running one at a time in order.
    #[arg(long = "run-asynchronous")]
    pub run_asynchronous: bool,
    /// What an exception does: log, retry or disable.
    #[arg(long = "error-behavior", default_value = "log")]
    pub error_behavior: String,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub name: TriggerName,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("state").args(["enabled", "disabled"])))]
pub struct UpdateTriggerArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub name: TriggerName,
    /// A new plugin (as for `create trigger`); with --upload, local code that replaces the
    /// trigger's plugin on the server.
    #[arg(short = 'p', long = "path", alias = "plugin-filename")]
    pub path: Option<String>,
    /// Send the local --path to the server's plugin directory first.
    #[arg(long, requires = "path")]
    pub upload: bool,
    /// New arguments as k=v,k2=v2 (they replace the old ones).
    #[arg(long = "trigger-arguments", value_delimiter = ',')]
    pub trigger_arguments: Vec<String>,
    /// New arguments as a JSON object.
    #[arg(long = "trigger-arguments-json")]
    pub trigger_arguments_json: Option<String>,
    /// log, retry or disable.
    #[arg(long = "error-behavior")]
    pub error_behavior: Option<String>,
    #[arg(long)]
    pub enabled: bool,
    #[arg(long)]
    pub disabled: bool,
}

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Set or clear a database's retention period.
    Database {
        #[command(flatten)]
        client: ClientArgs,
        /// The database (as --database, or last).
        #[arg(short = 'd', long = "database", env = "WEIR_DATABASE_NAME")]
        database: Option<String>,
        /// How long rows are kept: a number and h, d, w, mo or y (e.g. 30d); none keeps them forever.
        #[arg(short = 'r', long = "retention-period", value_parser = retention_period)]
        retention_period: String,
        name: Option<String>,
    },
    /// Change a trigger's plugin, arguments, error behaviour or state, keeping its place in
    /// the WAL.
    Trigger(Box<UpdateTriggerArgs>),
}

#[derive(Debug, Subcommand)]
pub enum ToggleCommand {
    /// A trigger, by name.
    Trigger {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        db: DbArg,
        #[command(flatten)]
        name: TriggerName,
    },
}

#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Run a WAL plugin on line protocol.
    #[command(name = "wal_plugin")]
    WalPlugin {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        db: DbArg,
        /// Line protocol to feed the plugin.
        #[arg(long)]
        lp: Option<String>,
        /// A file of line protocol to feed the plugin.
        #[arg(long)]
        file: Option<String>,
        /// Arguments as k=v,k2=v2.
        #[arg(long = "input-arguments", value_delimiter = ',')]
        input_arguments: Vec<String>,
        #[arg(long = "cache-name")]
        cache_name: Option<String>,
        filename: String,
    },
    /// Run a schedule plugin once, at its schedule's next tick.
    #[command(name = "schedule_plugin")]
    SchedulePlugin {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        db: DbArg,
        /// A cron expression, or every:DURATION.
        #[arg(long, default_value = "* * * * * *")]
        schedule: String,
        /// Arguments as k=v,k2=v2.
        #[arg(long = "input-arguments", value_delimiter = ',')]
        input_arguments: Vec<String>,
        #[arg(long = "cache-name")]
        cache_name: Option<String>,
        filename: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum InstallCommand {
    /// pip-install packages (or a requirements file) into the plugin virtualenv.
    Package {
        #[command(flatten)]
        client: ClientArgs,
        /// A requirements file, as a path the server can read.
        #[arg(short = 'r', long = "requirements")]
        requirements: Option<String>,
        packages: Vec<String>,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("partial").args(["accept_partial", "no_accept_partial"])))]
pub struct WriteArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub db: DbArg,
    /// Read line protocol from this file (`-` for stdin).
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// The timestamps' unit: auto, ns, us, ms or s.
    #[arg(short = 'p', long)]
    pub precision: Option<String>,
    /// Keep the good lines when some are bad (without it, one bad line refuses the write, as
    /// influxdb3's CLI does).
    #[arg(long)]
    pub accept_partial: bool,
    /// Refuse the whole write if any line is bad (the default; kept for older scripts).
    #[arg(long, hide = true)]
    pub no_accept_partial: bool,
    /// Answer before the WAL is durable.
    #[arg(long)]
    pub no_sync: bool,
    /// Line protocol given inline (several arguments are several lines); without it and
    /// without --file, stdin is read.
    pub lines: Vec<String>,
}

/// The language of `weir query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Language {
    Sql,
    Influxql,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub db: DbArg,
    /// sql, or influxql (sent to the server's /api/v3/query_influxql).
    #[arg(short = 'l', long, value_enum, default_value = "sql")]
    pub language: Language,
    /// json, jsonl, csv, pretty or parquet.
    #[arg(long, default_value = "pretty")]
    pub format: String,
    /// Write the answer to this file instead of stdout.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Read the query from this file.
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// `$name` parameters as a JSON object.
    #[arg(long)]
    pub params: Option<String>,
    pub query: Option<String>,
}

/// Checks a retention period on the command line, before anything is sent.
fn retention_period(s: &str) -> Result<String, String> {
    pipeline::retention::parse(s).map(|_| s.to_string())
}

#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// A database, optionally with a retention period.
    Database {
        #[command(flatten)]
        client: ClientArgs,
        /// How long rows are kept: a number and h, d, w, mo or y (e.g. 30d); none keeps them.
        #[arg(long = "retention-period", value_parser = retention_period)]
        retention_period: Option<String>,
        name: String,
    },
    /// A table with its tag and field columns, before any write.
    Table {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        db: DbArg,
        /// Tag columns, comma separated.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Field columns as name:type, comma separated.
        #[arg(long, value_delimiter = ',')]
        fields: Vec<String>,
        name: String,
    },
    /// A processing-engine trigger: a plugin called on writes, on a schedule or on requests.
    Trigger(Box<CreateTriggerArgs>),
    /// An admin token (--admin: the operator token, or a named one with --name) or a token
    /// limited to databases (--permission). The token is printed once.
    Token(Box<CreateTokenArgs>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("kind").required(true).args(["admin", "permission"])))]
pub struct CreateTokenArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// An admin token: the operator token without --name, a named admin token with it.
    #[arg(long)]
    pub admin: bool,
    /// A resource token's permission, RESOURCE_TYPE:NAMES:ACTIONS: db:a,b:read,write or
    /// system:*:read (may be given more than once).
    #[arg(long)]
    pub permission: Vec<String>,
    #[arg(long)]
    pub name: Option<String>,
    /// How long the token works: 1h, 10d, 1y. Default: forever.
    #[arg(long)]
    pub expiry: Option<String>,
    /// Give the operator token a new text (send the current one with --token).
    #[arg(long, requires = "admin")]
    pub regenerate: bool,
    /// Make an admin token without a server, written to --output-file, for
    /// `weir serve --admin-token-file`.
    #[arg(long, requires = "admin", requires = "output_file")]
    pub offline: bool,
    #[arg(long = "output-file")]
    pub output_file: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: TokenFormat,
}

#[derive(Debug, Subcommand)]
pub enum DeleteCommand {
    /// A database and all its tables, triggers and files.
    Database {
        #[command(flatten)]
        client: ClientArgs,
        name: String,
    },
    /// A table and its files.
    Table {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        db: DbArg,
        name: String,
    },
    /// A trigger (an enabled one only with --force).
    Trigger {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        db: DbArg,
        /// Delete it even if it is enabled.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        name: TriggerName,
    },
    /// A token (the operator token cannot be deleted).
    Token {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long = "token-name")]
        token_name: String,
    },
}

/// `show system`'s subcommands, as influxdb3 has them.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// The system tables there are.
    #[command(name = "table-list")]
    TableList {
        #[arg(long, default_value = "pretty")]
        format: String,
    },
    /// The rows of one system table.
    Table {
        /// At most this many rows (0: all).
        #[arg(short = 'l', long, default_value_t = 10)]
        limit: u64,
        /// Columns to order by, comma separated.
        #[arg(short = 'o', long = "order-by", value_delimiter = ',')]
        order_by: Vec<String>,
        /// Columns to show, comma separated.
        #[arg(short = 's', long, value_delimiter = ',')]
        select: Vec<String>,
        #[arg(long, default_value = "pretty")]
        format: String,
        name: String,
    },
    /// The first rows of every system table.
    Summary {
        /// At most this many rows of each (0: all).
        #[arg(short = 'l', long, default_value_t = 10)]
        limit: u64,
        #[arg(long, default_value = "pretty")]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShowCommand {
    /// Databases, with their retention periods.
    Databases {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long, default_value = "pretty")]
        format: String,
    },
    /// Tokens: names, permissions and expiry (never their text).
    Tokens {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long, value_enum, default_value = "text")]
        format: TokenFormat,
    },
    /// The plugin files triggers use (system.plugin_files of every database).
    Plugins {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long, default_value = "pretty")]
        format: String,
        /// Write the answer to this file instead of stdout.
        #[arg(long)]
        output: Option<String>,
    },
    /// Each database's retention period (or only --database's).
    Retention {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(short = 'd', long = "database", env = "WEIR_DATABASE_NAME")]
        database: Option<String>,
        #[arg(long, default_value = "pretty")]
        format: String,
    },
    /// A database's system tables: triggers, engine logs, Parquet files and more.
    #[command(visible_alias = "s")]
    System {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        db: DbArg,
        #[command(subcommand)]
        what: SystemCommand,
    },
}
