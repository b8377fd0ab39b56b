//! The `terraform-provider-dify` binary: flags, the hand-start refusal, then serve. No logic lives here.

use std::process::ExitCode;
use std::sync::Arc;

use terraform_provider_dify::framework::server::ProviderServer;
use terraform_provider_dify::log;
use terraform_provider_dify::protocol::handshake;
use terraform_provider_dify::protocol::serve::{serve, Mode};
use terraform_provider_dify::provider::{DifyProvider, PROVIDER_ADDRESS};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let debug = args.iter().any(|a| a == "--debug" || a == "-debug");
    if args.iter().any(|a| a == "--version" || a == "-version") {
        println!("terraform-provider-dify {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if !debug && !handshake::started_by_terraform() {
        eprintln!("{}", handshake::NOT_FOR_HUMANS);
        return ExitCode::from(1);
    }
    log::init_from_env(if debug { log::Level::Info } else { log::Level::Warn });
    let mode = if debug { Mode::Debug { provider_address: PROVIDER_ADDRESS.to_string() } } else { Mode::Plugin };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("terraform-provider-dify: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let server = Arc::new(ProviderServer::new(Arc::new(DifyProvider::default())));
    match runtime.block_on(serve(server, mode)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("terraform-provider-dify: {e}");
            ExitCode::from(1)
        }
    }
}
