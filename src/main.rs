//! The `weir` binary: the server (`weir serve`) and its command-line client.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = weir::cli::Cli::parse();
    if let Err(e) = weir::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
