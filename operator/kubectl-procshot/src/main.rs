//! The `kubectl-procshot` binary: kubectl finds it on PATH and runs it as
//! `kubectl procshot …`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use kubectl_procshot::cli::Cli;
use kubectl_procshot::cluster::Cluster;
use kubectl_procshot::commands::{self, Terminal};
use kubectl_procshot::view;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // kube speaks TLS with ring, object_store's HTTP client would pick aws-lc-rs: one
    // provider for the process, chosen before either makes a connection.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = Cluster::load(&cli.kube).await;
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    let mut term = Terminal {
        out_is_tty: std::io::stdout().is_terminal(),
        err_is_tty: std::io::stderr().is_terminal(),
        color: view::wants_color(&std::io::stdout()),
        out: &mut out,
        err: &mut err,
    };
    match commands::run(&cli.command, &cluster, &mut term).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
