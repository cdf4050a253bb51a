use clap::Parser;
use tessera::cli::Args;

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    tracing::debug!(?args, "starting");
    let outputs: Vec<String> = args.outputs.iter().map(ToString::to_string).collect();
    eprintln!(
        "tessera: the {:?} backend ({:?} renderer, outputs {}) is not built yet; \
         the compositor session lands with the compositor issue",
        args.backend,
        args.renderer,
        outputs.join(",")
    );
    std::process::exit(tessera::EXIT_UNAVAILABLE);
}
