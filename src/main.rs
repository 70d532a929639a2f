use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use voxbridge::config::{Config, DEFAULT_CONFIG_PATH};
use voxbridge::server::Server;
use voxbridge::store::Store;

#[derive(Parser)]
#[command(
    name = "voxbridge",
    version,
    about = "SIP/RTP media server with an embedded control API"
)]
struct Cli {
    /// Configuration file (TOML); any key can be overridden with VOXBRIDGE__SECTION__KEY.
    #[arg(long, global = true, env = "VOXBRIDGE_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: HTTP API, webhook delivery, dispatcher.
    Serve,
    /// Validate the configuration and exit (non-zero, naming the bad key, on any error).
    CheckConfig,
    /// Apply database migrations and exit.
    Migrate,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config, std::env::vars())?;
    match cli.command {
        Command::CheckConfig => {
            let agents: usize = config.orgs.iter().map(|o| o.agents.len()).sum();
            println!(
                "{}: ok ({} orgs, {} agents, {} trunks, database {})",
                cli.config.display(),
                config.orgs.len(),
                agents,
                config.trunks.len(),
                config
                    .database
                    .url
                    .split(['?', '@'])
                    .next()
                    .unwrap_or_default(),
            );
            Ok(())
        }
        Command::Migrate => runtime()?.block_on(async {
            let store = Store::connect(&config.database.url, 1).await?;
            store.migrate().await?;
            println!(
                "migrations applied to {}",
                config
                    .database
                    .url
                    .split('@')
                    .next_back()
                    .unwrap_or_default()
            );
            Ok(())
        }),
        Command::Serve => runtime()?.block_on(async {
            let server = Server::start(config, None).await?;
            println!("voxbridge listening on http://{}", server.http_addr);
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            tracing::info!("shutting down");
            server.shutdown().await;
            Ok(())
        }),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
