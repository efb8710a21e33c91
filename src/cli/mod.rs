//! The `weir` command line: `serve`, and client commands that talk to a server over HTTP,
//! mirroring `influxdb3`'s commands and flags.

mod admin;
mod args;
mod client;
mod engine;
pub mod env;
mod plugin_files;
mod tokens;

pub use args::*;

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(cfg) => crate::server::run(*cfg),
        Command::Write(a) => client::write(a),
        Command::Query(a) => client::query(a),
        Command::Create { what } => client::create(what),
        Command::Update { what } => match what {
            UpdateCommand::Database { client, database, retention_period, name } => {
                admin::update_database(&client, name.or(database), &retention_period)
            }
            UpdateCommand::Trigger(a) => engine::update_trigger(*a),
        },
        Command::Delete { what } => client::delete(what),
        Command::Show { what } => client::show(what),
        Command::Enable { what } => engine::toggle(what, false),
        Command::Disable { what } => engine::toggle(what, true),
        Command::Test { what } => engine::test(what),
        Command::Install { what } => engine::install(what),
        Command::Replay { what } => engine::replay(what),
    }
}
