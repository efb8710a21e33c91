//! The `weir` binary: the server (`weir serve`) and its command-line client.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    weir::cli::env::adopt_influxdb3_variables();
    let cli = weir::cli::Cli::parse();
    if !matches!(cli.command, weir::cli::Command::Serve(_)) {
        // A client command piped into `head` ends quietly when the reader goes, as Unix tools
        // do; the server keeps Rust's default of ignoring SIGPIPE (a client that hangs up is an
        // error on that connection only).
        // SAFETY: setting a signal's disposition before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    if let Err(e) = weir::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
