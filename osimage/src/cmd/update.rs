//! `osimage update`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub(crate) struct UpdateArgs {
    /// The disk (block device or image file) to update, or `auto` for the disk the
    /// running system booted from (from the EFI variables, as `osimage status`).
    #[arg(long)]
    pub target: PathBuf,
    /// Settings from an update.toml (flags override them).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Settings from systemd sysupdate.d/*.transfer files instead.
    #[arg(long, conflicts_with = "config")]
    pub transfer_dir: Option<PathBuf>,
    /// Base URL or directory holding SHA256SUMS, SHA256SUMS.p7s and the files.
    #[arg(long)]
    pub source: Option<String>,
    /// OS name: files and labels are <name>_<version> (default tessera).
    #[arg(long)]
    pub name: Option<String>,
    /// Certificate trusted for SHA256SUMS.p7s.
    #[arg(long)]
    pub vendor_cert: Option<PathBuf>,
    /// Certificate trusted for verity root hash signatures (default: vendor's).
    #[arg(long)]
    pub verity_cert: Option<PathBuf>,
    /// Only list what is offered and what would be installed.
    #[arg(long)]
    pub check: bool,
    /// The running version, never touched. By default it is the slot on the target
    /// whose root hash is the running `usrhash=` (see --cmdline); none when no
    /// slot there matches, as for an offline disk.
    #[arg(long)]
    pub booted: Option<String>,
    /// Kernel command line to find the running `usrhash=` in.
    #[arg(long, default_value = "/proc/cmdline")]
    pub cmdline: PathBuf,
    /// Never install a version below this one (sysupdate's MinVersion).
    #[arg(long)]
    pub min_version: Option<String>,
    /// Install the newest offered version even when it is older than the booted one.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Boot counting tries for the new version (default 3).
    #[arg(long)]
    pub tries: Option<u32>,
    /// Versions whose UKIs are kept (InstancesMax, default 2).
    #[arg(long)]
    pub instances_max: Option<usize>,
}

pub(crate) fn update_cmd(args: UpdateArgs, json: bool) -> ExitCode {
    let UpdateArgs {
        target,
        config,
        transfer_dir,
        source,
        name,
        vendor_cert,
        verity_cert,
        check,
        booted,
        cmdline,
        min_version,
        allow_downgrade,
        tries,
        instances_max,
    } = args;
    let run = || -> anyhow::Result<osimage::update::apply::Report> {
        use osimage::update::config::UpdateConfig;
        let file = match (&config, &transfer_dir) {
            (Some(p), _) => UpdateConfig::load_toml(p)?,
            (None, Some(d)) => UpdateConfig::load_sysupdate_dir(d)?,
            (None, None) => UpdateConfig::default(),
        };
        let source = source
            .or(file.source.url)
            .context("no update source: give --source or a config with source.url")?;
        let vendor_cert = vendor_cert
            .or(file.source.vendor_cert)
            .context("no vendor certificate: give --vendor-cert or source.vendor-cert")?;
        let verity_cert = verity_cert.or(file.source.verity_cert);
        let name = name
            .or(file.transfer.name)
            .unwrap_or_else(|| "tessera".into());
        let min_version = min_version.or(file.transfer.min_version);
        let tries = tries.or(file.transfer.tries).unwrap_or(3);
        let instances_max = instances_max.or(file.transfer.instances_max).unwrap_or(2);
        let vendor = osimage::sign::load_cert(&vendor_cert)?;
        let verity = match &verity_cert {
            Some(p) => osimage::sign::load_cert(p)?,
            None => vendor.clone(),
        };
        let target = super::firstboot::resolve_disk(&target, None)?;
        if !check {
            release_boot_partition(&target)?;
        }
        let mut disk =
            osimage::disk::FileDisk::open(&target).with_context(|| target.display().to_string())?;
        let booted = match booted {
            Some(v) => Some(v),
            None => booted_from_cmdline(&disk, &name, &cmdline)?,
        };
        let opts = osimage::update::apply::Options {
            name,
            vendor_cert: vendor,
            verity_cert: verity,
            booted,
            policy: osimage::update::catalog::Policy {
                min_version,
                allow_downgrade,
            },
            tries,
            instances_max,
        };
        let src = osimage::update::source::Source::parse(&source);
        Ok(if check {
            osimage::update::apply::check(&disk, &src, &opts)?
        } else {
            osimage::update::apply::apply(&mut disk, &src, &opts)?
        })
    };
    match run() {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                if let Some(b) = &r.booted {
                    println!("booted   {b}");
                }
                for o in &r.offered {
                    let state = if o.complete() {
                        "complete".to_owned()
                    } else {
                        format!("incomplete, missing {}", o.missing.join(", "))
                    };
                    println!("offered  {:<12} {state}", o.version);
                }
                println!(
                    "decision {}",
                    serde_json::to_string(&r.decision).unwrap_or_default()
                );
                if let Some(a) = &r.activated {
                    println!("activated {a}");
                }
            }
            match r.decision {
                osimage::update::catalog::Decision::Refused { .. } => ExitCode::from(3),
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("osimage: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The running version on `disk`, from the `usrhash=` in the command line file. A
/// missing file (not Linux, a container) means none is running from it.
fn booted_from_cmdline(
    disk: &dyn osimage::disk::Disk,
    name: &str,
    cmdline: &Path,
) -> anyhow::Result<Option<String>> {
    let Ok(line) = std::fs::read_to_string(cmdline) else {
        return Ok(None);
    };
    if osimage::update::slots::usrhash(&line).is_none() {
        return Ok(None);
    }
    let gpt = osimage::disk::read_gpt(disk).context("reading the target's partition table")?;
    let booted = osimage::update::slots::booted_version(&gpt, name, &line);
    match &booted {
        Some(v) => tracing::info!(
            "running {v} from this disk (usrhash= in {})",
            cmdline.display()
        ),
        None => tracing::info!(
            "usrhash= in {} names no slot on this disk",
            cmdline.display()
        ),
    }
    Ok(booted)
}

/// The update writes the boot partition's FAT through the disk itself. A kernel
/// that has the same FAT mounted (systemd's /efi automount, say) keeps serving its
/// cached view and may later write it back over the new UKI. So the mount goes
/// first: autofs mounts it again on the next access. A busy mount is an error,
/// before anything is written.
fn release_boot_partition(target: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(target).with_context(|| target.display().to_string())?;
    if !meta.file_type().is_block_device() {
        return Ok(());
    }
    let disk = osimage::disk::FileDisk::open_read_only(target)
        .with_context(|| target.display().to_string())?;
    let gpt = osimage::disk::read_gpt(&disk).context("reading the target's partition table")?;
    let Some(at) = osimage::boot::esp::boot_partition(&gpt) else {
        return Ok(());
    };
    let sys = PathBuf::from(format!(
        "/sys/dev/block/{}:{}",
        libc::major(meta.rdev()),
        libc::minor(meta.rdev())
    ));
    let Ok(children) = std::fs::read_dir(&sys) else {
        return Ok(());
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for child in children.filter_map(Result::ok) {
        let read = |f: &str| std::fs::read_to_string(child.path().join(f)).unwrap_or_default();
        // sysfs counts partition starts in 512-byte units whatever the sector size.
        if read("start").trim().parse::<u64>().ok() != Some(at.offset / 512) {
            continue;
        }
        for mount in osimage::mounts::mount_points(&mountinfo, read("dev").trim()) {
            tracing::info!("unmounting the boot partition from {mount} before writing it");
            let status = std::process::Command::new("umount")
                .arg(&mount)
                .status()
                .context("run umount")?;
            anyhow::ensure!(
                status.success(),
                "the boot partition is mounted at {mount} and could not be unmounted \
                 (busy?); nothing was written"
            );
        }
    }
    Ok(())
}
