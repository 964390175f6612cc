//! The `bms-keys` binary: parse the command line, set up logging, run.

use clap::Parser;

fn main() -> std::process::ExitCode {
    bms_keys::db::init_postgres_client();
    bms_keys::telemetry::init();
    match bms_keys::cli::run(bms_keys::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", bms_keys::error::ErrorChain(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}
