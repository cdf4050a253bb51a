//! `cargo xtask vm`: builds the appliance of `config/appliance/` (or reuses it) and
//! boots it in QEMU under OVMF with a vTPM (swtpm), virtio-gpu and a virtio disk.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use tessera_rig::appliance::{self, ApplianceRoot, Binaries};
use tessera_rig::{Artifacts, Swtpm, VmConfig};

use crate::deps;

#[derive(Debug, clap::Args)]
pub struct VmArgs {
    /// The image version to build (os-release VERSION_ID, partition labels).
    #[arg(long, default_value = "1.0")]
    version: String,
    /// Build the image and the disk, print their paths, and do not boot.
    #[arg(long)]
    build_only: bool,
    /// Start from a new disk (first boot again) instead of the one from last time.
    #[arg(long)]
    fresh: bool,
    /// The disk's size in GiB (firstboot gives root what the image leaves).
    #[arg(long, default_value_t = 8)]
    disk_gib: u64,
    /// Print the built paths as JSON (with --build-only).
    #[arg(long)]
    json: bool,
}

/// Where `cargo xtask vm` keeps its work: `target/appliance`.
fn work_dir() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    Ok(root.join("target/appliance"))
}

pub fn run(args: VmArgs) -> anyhow::Result<()> {
    deps::ensure_groups(&["build", "rig"], false)?;
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--bin", "osimage", "--bin", "tessera"])
        .status()?;
    anyhow::ensure!(status.success(), "cargo build failed");
    let work = work_dir()?;
    let bins = Binaries {
        osimage: work.join("../debug/osimage"),
        tessera: Some(work.join("../debug/tessera")),
    };
    let art = Artifacts::ensure().context("fetching the kernel and systemd-boot")?;
    let app = ApplianceRoot::ensure(&art).context("building the appliance tree (mmdebstrap)")?;
    let definition = appliance::stage(&app, &work, &args.version, &bins, &[])?;
    let image = work.join(format!("tessera_{}.img", args.version));
    let report = appliance::build_image(&bins.osimage, &definition, &image)?;
    let disk = work.join("disk.img");
    if args.fresh || !disk.exists() {
        appliance::make_disk(&image, &disk, args.disk_gib << 30)?;
    }
    if args.build_only {
        if args.json {
            let out = serde_json::json!({
                "image": image, "disk": disk, "definition": definition,
                "tree": app.root, "build": report,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            println!("image {}\ndisk  {}", image.display(), disk.display());
        }
        return Ok(());
    }
    let tpm = Swtpm::unix()?;
    let config = VmConfig::firmware(&disk)
        .with_tpm(&tpm)
        .with_gpu(1280, 800)
        .with_credential("passwd.plaintext-password.root", "tessera");
    let dir = tempfile::tempdir()?;
    std::fs::copy(tessera_rig::vm::OVMF_VARS, dir.path().join("OVMF_VARS.fd"))?;
    let mut qemu_args = config.qemu_args(dir.path());
    // Interactive: the console on this terminal (Ctrl-A X quits), a window when
    // there is a display.
    let serial = qemu_args
        .iter()
        .position(|a| a == "-serial")
        .context("console arguments")?;
    qemu_args[serial + 1] = "mon:stdio".into();
    let display =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if let Some(i) = qemu_args
        .iter()
        .position(|a| a == "none")
        .filter(|_| display)
    {
        qemu_args[i] = "gtk".into();
    }
    println!(
        "Booting {} (log in as root, password tessera; Ctrl-A X quits)",
        disk.display()
    );
    let status = Command::new("qemu-system-x86_64")
        .args(&qemu_args)
        .status()?;
    anyhow::ensure!(status.success(), "qemu exited with {status}");
    Ok(())
}
