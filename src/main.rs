use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use voxbridge::clock::Clock;
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
    /// Transcribe a WAV file (PCM16, μ-law or A-law; mono; 8 or 16 kHz) as a call would be.
    Transcribe(TranscribeArgs),
}

#[derive(clap::Args)]
struct TranscribeArgs {
    file: PathBuf,
    /// A ggml whisper model; default: `[asr] model` of --config.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Text the speech likely follows, e.g. the question the caller heard.
    #[arg(long)]
    prompt: Option<String>,
    /// free | yes_no | digits | date | time | amount | spelling | choice
    #[arg(long)]
    answer_type: Option<String>,
    /// The options of a `choice` answer.
    #[arg(long, value_delimiter = ',')]
    choices: Vec<String>,
    /// Print `{"text", "value", "confidence", "segments"}` instead of the text.
    #[arg(long)]
    json: bool,
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
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let load = || Config::load(&cli.config, std::env::vars());
    match &cli.command {
        Command::Transcribe(args) => transcribe(&cli.config, args),
        Command::CheckConfig => {
            let config = load()?;
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
            let config = load()?;
            let store = Store::connect(&config.database.url, 1, Clock::system()).await?;
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
            let config = load()?;
            let server = Server::start(config, None, Clock::system()).await?;
            println!("voxbridge listening on http://{}", server.http_addr);
            // SIGTERM is how systemd, Docker and Kubernetes stop a service; Ctrl-C by hand.
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .context("listening for SIGTERM")?;
            tokio::select! {
                interrupted = tokio::signal::ctrl_c() => interrupted.context("waiting for Ctrl-C")?,
                _ = term.recv() => {}
            }
            tracing::info!("shutting down: live calls are hung up and stored");
            server.shutdown().await;
            Ok(())
        }),
    }
}

/// The config is read only when it has to supply the model, so `--model` works anywhere.
fn transcribe(config_path: &std::path::Path, args: &TranscribeArgs) -> anyhow::Result<()> {
    let asr = match &args.model {
        Some(_) => None,
        None => Config::load(config_path, std::env::vars())?.asr,
    };
    let model = args
        .model
        .clone()
        .or_else(|| asr.as_ref().and_then(|a| a.model.clone()))
        .with_context(|| {
            format!(
                "no model: pass --model or set [asr] model in {}",
                config_path.display()
            )
        })?;
    let options = voxbridge_asr::engine::TranscribeOptions {
        model,
        // `--model` decodes everything with the model given.
        answer_model: asr.as_ref().and_then(|a| a.answer_model.clone()),
        prompt: args.prompt.clone(),
        answer_type: args.answer_type.clone(),
        choices: args.choices.clone(),
        threads: asr.as_ref().map_or(2, |a| a.threads),
        language: asr.map_or_else(|| "en".to_owned(), |a| a.language),
    };
    let output = voxbridge_asr::engine::transcribe_wav(&args.file, &options)?;
    if args.json {
        println!("{}", serde_json::to_string(&output)?);
    } else {
        println!("{}", output.text);
    }
    Ok(())
}

/// The error and its causes, skipping a cause its parent's message already includes.
fn describe(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
