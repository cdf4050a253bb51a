//! The one list of Debian packages the project needs, and an idempotent installer.

use std::process::Command;

use anyhow::{Context, bail};

/// Packages by purpose. This is the only place the list lives.
pub const GROUPS: &[(&str, &str, &[&str])] = &[
    (
        "build",
        "headers and tools to compile the workspace (smithay backends, libcryptsetup)",
        &[
            "pkg-config",
            "clang",
            "libclang-dev",
            "libudev-dev",
            "libinput-dev",
            "libgbm-dev",
            "libdrm-dev",
            "libseat-dev",
            "libxkbcommon-dev",
            "libwayland-dev",
            "libpixman-1-dev",
            "libegl-dev",
            "libegl1-mesa-dev",
            "libgles-dev",
            "libgl1-mesa-dri",
            "libcryptsetup-dev",
        ],
    ),
    (
        "rig",
        "the real peers the tests start: TPM, disks and filesystems, QEMU, nginx, shaders",
        &[
            "swtpm",
            "swtpm-tools",
            "tpm2-tools",
            "libtss2-tcti-swtpm0",
            "systemd",
            "cryptsetup-bin",
            "qemu-system-x86",
            "ovmf",
            "mtools",
            "dosfstools",
            "fdisk",
            "erofs-utils",
            "squashfs-tools",
            "nginx-light",
            "glslang-tools",
            "cpio",
            "kmod",
            "binutils",
            "openssl",
            "curl",
            "systemd-container",
            "mmdebstrap",
        ],
    ),
    (
        "clients",
        "real Wayland clients, the WLCS conformance suite, and a cursor theme",
        &[
            "weston",
            "foot",
            "wayland-utils",
            "wlcs",
            "grim",
            "adwaita-icon-theme",
        ],
    ),
    (
        "bench",
        "the peer compositors `cargo xtask bench compositor` runs against",
        &["weston", "sway"],
    ),
];

pub fn print_list() {
    for (group, purpose, packages) in GROUPS {
        println!("# {group}: {purpose}");
        println!("{}", packages.join(" "));
    }
}

/// Installs every group.
pub fn ensure(dry_run: bool) -> anyhow::Result<()> {
    let all: Vec<&str> = GROUPS.iter().map(|(g, _, _)| *g).collect();
    ensure_groups(&all, dry_run)
}

/// Installs the packages of the named groups that are missing; does nothing (and runs
/// no `apt-get update`) when all are present.
pub fn ensure_groups(groups: &[&str], dry_run: bool) -> anyhow::Result<()> {
    let wanted: Vec<&str> = GROUPS
        .iter()
        .filter(|(g, _, _)| groups.contains(g))
        .flat_map(|(_, _, p)| p.iter().copied())
        .collect();
    let missing = missing(&wanted)?;
    if missing.is_empty() {
        println!("deps: all {} packages present, nothing to do", wanted.len());
        return Ok(());
    }
    println!("deps: missing {}: {}", missing.len(), missing.join(" "));
    if dry_run {
        println!("deps: --dry-run, not installing");
        return Ok(());
    }
    apt(&["update"])?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    apt(&args)?;
    let still = self::missing(&wanted)?;
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(" "));
    }
    println!("deps: installed {}", missing.join(" "));
    Ok(())
}

/// The packages of `wanted` that dpkg does not have installed.
fn missing<'a>(wanted: &[&'a str]) -> anyhow::Result<Vec<&'a str>> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${db:Status-Abbrev}\\n"])
        .args(wanted)
        .output()
        .context("running dpkg-query (is this Debian?)")?;
    // dpkg-query exits 1 when some package is unknown; its stdout still lists the rest.
    let listing = String::from_utf8_lossy(&out.stdout);
    let installed: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, status)| status.starts_with("ii"))
        .map(|(name, _)| name.split(':').next().unwrap_or(name))
        .collect();
    Ok(wanted
        .iter()
        .copied()
        .filter(|p| !installed.contains(p))
        .collect())
}

fn apt(args: &[&str]) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.arg("apt-get");
        c
    };
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    println!(
        "deps: {}apt-get {}",
        if root { "" } else { "sudo " },
        args.join(" ")
    );
    let status = cmd.status().context("running apt-get")?;
    if !status.success() {
        bail!("apt-get {} failed with {status}", args.join(" "));
    }
    Ok(())
}
