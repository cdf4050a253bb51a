//! `cargo xtask …`: everything a fresh Debian 12 machine with only Rust needs.

mod bench;
mod deps;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Tessera's developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install every Debian package the workspace and its tests need (idempotent).
    Deps {
        /// Only print what would be installed.
        #[arg(long)]
        dry_run: bool,
        /// Print the package list, grouped by purpose, and exit.
        #[arg(long)]
        list: bool,
    },
    /// deps, then fmt check, clippy, and the whole test suite.
    Test {
        /// Extra arguments for the test runner (a filter, for example).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Run Tessera (the main job).
    Run {
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Benchmarks against the peer tools, in the same run (see BENCHMARKS.md).
    Bench {
        /// Which: `osimage`.
        what: String,
        /// Data size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Runs per tool; the best is reported.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
    /// Download and cache the Debian artifacts the VM tests boot.
    FetchArtifacts {
        /// Print the cached paths as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Deps { dry_run, list } => {
            if list {
                deps::print_list();
                Ok(())
            } else {
                deps::ensure(dry_run)
            }
        }
        Command::Test { args } => test::run(&args),
        Command::Run { args } => run(&args),
        Command::Bench {
            what,
            size_mib,
            runs,
        } => bench::run(&what, size_mib, runs),
        Command::FetchArtifacts { json } => fetch_artifacts(json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn fetch_artifacts(json: bool) -> anyhow::Result<()> {
    deps::ensure_groups(&["rig"], false)?;
    let art = tessera_rig::Artifacts::ensure()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&art)?);
    } else {
        println!("artifacts cached in {}", art.cache.display());
        for (package, version) in &art.packages {
            println!("  {package} {version}");
        }
        println!("  kernel        {}", art.vmlinuz.display());
        println!("  modules       {}", art.modules.display());
        println!("  efi stub      {}", art.efi_stub.display());
        println!("  systemd-boot  {}", art.systemd_boot.display());
        println!("  busybox       {}", art.busybox.display());
    }
    Ok(())
}

/// The main job. The compositor session is not built yet (compositor issue), so this
/// says what exists today instead of starting something that would pretend to work.
fn run(args: &[String]) -> anyhow::Result<()> {
    deps::ensure_groups(&["build"], false)?;
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--workspace", "--bins"])
        .status()?;
    anyhow::ensure!(status.success(), "cargo build failed");
    println!("Tessera: the workspace builds. What runs today:");
    println!("  target/debug/tessera --help     compositor command line (session not built yet)");
    println!("  target/debug/osimage --help     image tooling (version comparison so far)");
    println!(
        "  cargo xtask fetch-artifacts     the Debian kernel, systemd-boot and busybox for VM tests"
    );
    println!(
        "  cargo xtask test                the whole suite, including real QEMU, swtpm and nginx"
    );
    if !args.is_empty() {
        println!("(arguments {args:?} are for the compositor and are ignored until it exists)");
    }
    Ok(())
}
