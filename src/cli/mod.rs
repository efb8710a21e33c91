//! The `weir` command line: `serve`, and client commands that talk to a server over HTTP,
//! mirroring `influxdb3`'s commands and flags.

mod client;
mod engine;
mod tokens;

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
    #[arg(long = "host", env = "WEIR_HOST_URL", default_value = "http://127.0.0.1:8181", global = true)]
    pub host: String,
    /// Auth token, sent as `Authorization: Bearer TOKEN` (also read from INFLUXDB3_AUTH_TOKEN).
    #[arg(long, env = "WEIR_AUTH_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeConfig>),
    /// Write line protocol from a file, stdin (`-`) or the argument itself.
    Write(WriteArgs),
    /// Run a SQL query.
    Query(QueryArgs),
    /// Create a resource.
    Create {
        #[command(subcommand)]
        what: CreateCommand,
    },
    /// Delete a resource.
    Delete {
        #[command(subcommand)]
        what: DeleteCommand,
    },
    /// List resources.
    Show {
        #[command(subcommand)]
        what: ShowCommand,
    },
    /// Enable a resource.
    Enable {
        #[command(subcommand)]
        what: ToggleCommand,
    },
    /// Disable a resource.
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
        #[arg(short = 'd', long = "database", env = "WEIR_DATABASE_NAME")]
        database: String,
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
    #[arg(short = 'd', long = "database", env = "WEIR_DATABASE_NAME")]
    pub database: String,
    /// table:NAME, all_tables, every:DURATION, cron:EXPRESSION or request:PATH.
    #[arg(long = "trigger-spec")]
    pub trigger_spec: String,
    /// The plugin, relative to the server's plugin directory (`--path` is the newer spelling).
    #[arg(long = "plugin-filename", alias = "path")]
    pub plugin_filename: String,
    /// Arguments as k=v,k2=v2 (split on every comma, as influxdb3 does).
    #[arg(long = "trigger-arguments", value_delimiter = ',')]
    pub trigger_arguments: Vec<String>,
    /// Arguments as a JSON object, for values that hold commas.
    #[arg(long = "trigger-arguments-json")]
    pub trigger_arguments_json: Option<String>,
    #[arg(long = "run-asynchronous")]
    pub run_asynchronous: bool,
    /// log, retry or disable.
    #[arg(long = "error-behavior", default_value = "log")]
    pub error_behavior: String,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum ToggleCommand {
    Trigger {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(short = 'd', long = "database", env = "WEIR_DATABASE_NAME")]
        database: String,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Run a WAL plugin on line protocol.
    #[command(name = "wal_plugin")]
    WalPlugin {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(short = 'd', long = "database", env = "WEIR_DATABASE_NAME")]
        database: String,
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
        #[arg(short = 'd', long = "database", env = "WEIR_DATABASE_NAME")]
        database: String,
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
pub struct WriteArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[arg(short = 'd', long = "database", env = "WEIR_DATABASE_NAME")]
    pub database: String,
    /// Read line protocol from this file (`-` for stdin).
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    #[arg(long)]
    pub precision: Option<String>,
    /// Refuse the whole write if any line is bad.
    #[arg(long)]
    pub no_accept_partial: bool,
    /// Answer before the WAL is durable.
    #[arg(long)]
    pub no_sync: bool,
    /// Line protocol given inline.
    pub lines: Option<String>,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[arg(short = 'd', long = "database", env = "WEIR_DATABASE_NAME")]
    pub database: String,
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
    Database {
        #[command(flatten)]
        client: ClientArgs,
        /// How long rows are kept: a number and h, d, w, mo or y (e.g. 30d); none keeps them.
        #[arg(long = "retention-period", value_parser = retention_period)]
        retention_period: Option<String>,
        name: String,
    },
    Table {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(short = 'd', long = "database")]
        database: String,
        /// Tag columns, comma separated.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Field columns as name:type, comma separated.
        #[arg(long, value_delimiter = ',')]
        fields: Vec<String>,
        name: String,
    },
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
    Database {
        #[command(flatten)]
        client: ClientArgs,
        name: String,
    },
    Table {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(short = 'd', long = "database")]
        database: String,
        name: String,
    },
    Trigger {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(short = 'd', long = "database", env = "WEIR_DATABASE_NAME")]
        database: String,
        /// Delete it even if it is enabled.
        #[arg(long)]
        force: bool,
        name: String,
    },
    /// A token (the operator token cannot be deleted).
    Token {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long = "token-name")]
        token_name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShowCommand {
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
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(cfg) => crate::server::run(*cfg),
        Command::Write(a) => client::write(a),
        Command::Query(a) => client::query(a),
        Command::Create { what } => client::create(what),
        Command::Delete { what } => client::delete(what),
        Command::Show { what } => client::show(what),
        Command::Enable { what } => engine::toggle(what, false),
        Command::Disable { what } => engine::toggle(what, true),
        Command::Test { what } => engine::test(what),
        Command::Install { what } => engine::install(what),
        Command::Replay { what } => engine::replay(what),
    }
}
