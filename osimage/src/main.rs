use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// osimage: image-based OS tooling for the Tessera appliance.
#[derive(Debug, Parser)]
#[command(name = "osimage", version)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare two versions the way systemd-boot and sysupdate do.
    ///
    /// Exit status: 0 if A = B, 11 if A < B, 12 if A > B.
    CompareVersions { a: String, b: String },
    /// Sort versions newest first, by systemd's version comparison.
    SortVersions {
        #[arg(required = true)]
        versions: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::CompareVersions { a, b } => {
            let ord = osimage::version::compare(&a, &b);
            let (sym, word, code) = match ord {
                std::cmp::Ordering::Less => ("<", "less", 11),
                std::cmp::Ordering::Equal => ("=", "equal", 0),
                std::cmp::Ordering::Greater => (">", "greater", 12),
            };
            if cli.json {
                println!("{}", serde_json::json!({ "a": a, "b": b, "order": word }));
            } else {
                println!("{a} {sym} {b}");
            }
            ExitCode::from(code)
        }
        Command::SortVersions { mut versions } => {
            osimage::version::sort_newest_first(&mut versions);
            if cli.json {
                println!("{}", serde_json::json!(versions));
            } else {
                for v in versions {
                    println!("{v}");
                }
            }
            ExitCode::SUCCESS
        }
    }
}
