//! `cargo xtask …`: everything a fresh Debian 12 machine with only Rust needs.

mod bench;
mod bench_compositor;
mod deps;
mod test;
mod vm;

use std::process::ExitCode;

use anyhow::Context;

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
    /// Run Tessera (the main job): the best backend here, foot autostarted, a
    /// screenshot after the first frames. Extra arguments go to `tessera`, e.g.
    /// `--exit-after 10` or `--renderer gles`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Benchmarks against the peer tools, in the same run (see BENCHMARKS.md).
    Bench {
        /// Which: `osimage` or `compositor`.
        what: String,
        /// Data size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Runs per tool: osimage reports the best, compositor the median.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Frames measured per compositor run (compositor benchmark).
        #[arg(long, default_value_t = 600)]
        frames: u32,
    },
    /// Build the appliance (config/appliance) and boot it in QEMU with OVMF, a vTPM
    /// and virtio-gpu; the serial console is this terminal.
    Vm(vm::VmArgs),
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
            frames,
        } => bench::run(&what, size_mib, runs, frames),
        Command::FetchArtifacts { json } => fetch_artifacts(json),
        Command::Vm(args) => vm::run(args),
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
    deps::ensure_groups(&["build", "clients"], false)?;
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--workspace", "--bins"])
        .status()?;
    anyhow::ensure!(status.success(), "cargo build failed");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let screenshot = root.join("target/tessera-first-frames.png");
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from);
    let runtime = match runtime.filter(|d| d.is_dir()) {
        Some(dir) => dir,
        None => {
            // A machine without a login session (CI, containers) has no runtime dir.
            let dir = root.join("target/xdg-runtime");
            std::fs::create_dir_all(&dir)?;
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
            dir
        }
    };
    // Best backend for the machine: tessera's `auto` picks kms on a free VT with a
    // seat, nested under a display, headless otherwise (one 1280x720 output).
    let mut cmd = std::process::Command::new(root.join("target/debug/tessera"));
    cmd.env("XDG_RUNTIME_DIR", &runtime)
        .args([
            "--backend",
            "auto",
            "--outputs",
            "1280x720",
            "--spawn",
            "foot",
        ])
        .arg("--screenshot")
        .arg(&screenshot)
        .args(args);
    println!(
        "Starting tessera (Ctrl-C to stop; pass --exit-after SECONDS to stop on a timer).\n\
         It prints WAYLAND_DISPLAY, the IPC socket (TESSERA_SOCKET) and, after 3 s, the screenshot path."
    );
    let status = cmd.status().context("starting target/debug/tessera")?;
    anyhow::ensure!(
        status.success() || status.code() == Some(130),
        "tessera exited with {status}"
    );
    Ok(())
}
