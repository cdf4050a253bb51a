//! `osimage firstboot`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use osimage::boot::bootdisk;
use osimage::boot::efivars::EfiVars;
use osimage::definition::repart_conf;
use osimage::disk::FileDisk;
use osimage::firstboot::blockdev::SystemBlockDevice;
use osimage::firstboot::config::FirstbootConfig;
use osimage::firstboot::{self, Firstboot, FirstbootError, RecoveryKey, Report};
use osimage::luks::enroll::Tpm2Binding;
use osimage::reset::{self, BootRequest};
use osimage::tpm2::{TctiSpec, Tpm, Tpm2Error};

/// Exit status when the TPM cannot be used as it is (lockout, no sha256 bank, absent
/// where the configuration requires one).
const EXIT_TPM: u8 = 5;
/// Exit status when the definitions and the disk do not fit together (too small,
/// conflicting partitions, an unreadable LUKS2 header).
const EXIT_LAYOUT: u8 = 6;

#[derive(Debug, clap::Args)]
pub(crate) struct FirstbootArgs {
    /// The disk: a block device or an image file, or `auto` for the disk the machine
    /// booted from (systemd-boot's LoaderDevicePartUUID EFI variable names its ESP).
    /// On a block device the new partitions get their file systems (Format=,
    /// MakeDirectories=, MakeSymlinks=); an image file's stay unformatted.
    #[arg(long)]
    pub disk: PathBuf,
    /// Settings (see config/osimage/firstboot.toml); a missing file means defaults.
    #[arg(long, default_value = osimage::firstboot::config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// A repart.d directory instead of the configured one.
    #[arg(long)]
    pub definitions: Option<PathBuf>,
    /// The TPM: auto, none, device:/dev/tpmrm0 or swtpm:host=H,port=N.
    #[arg(long)]
    pub tpm: Option<String>,
    /// The PEM public key of the PCR signatures (the UKI's .pcrpkey).
    #[arg(long)]
    pub pcr_public_key: Option<PathBuf>,
    /// Write the recovery key to this file (mode 0600) instead of showing it.
    #[arg(long)]
    pub recovery_key_file: Option<PathBuf>,
    /// An efivarfs directory instead of /sys/firmware/efi/efivars: the factory reset
    /// request, and LoaderDevicePartUUID for `--disk auto`.
    #[arg(long)]
    pub efivars: Option<PathBuf>,
    /// The kernel command line to read systemd.factory_reset= from.
    #[arg(long, default_value = "/proc/cmdline")]
    pub cmdline: PathBuf,
    /// Where LUKS2 headers are built (a tmpfs).
    #[arg(long)]
    pub staging: Option<PathBuf>,
    /// Print the plan (reset and new partitions); write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub(crate) fn firstboot_cmd(args: FirstbootArgs, json: bool) -> ExitCode {
    match run(args) {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("osimage: error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print_report(&report);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("osimage: error: {e:#}");
            let code = match e.downcast_ref::<FirstbootError>() {
                Some(f) if f.is_tpm_unusable() => EXIT_TPM,
                Some(f) if f.is_layout() => EXIT_LAYOUT,
                _ => match e.downcast_ref::<Tpm2Error>() {
                    Some(Tpm2Error::NoTpm(_) | Tpm2Error::Lockout) => EXIT_TPM,
                    _ => 1,
                },
            };
            ExitCode::from(code)
        }
    }
}

fn print_report(r: &Report) {
    let verb = if r.dry_run { "would" } else { "did" };
    if let Some(reset) = &r.reset {
        if reset.erased.is_empty() {
            println!("factory reset: nothing to erase");
        } else {
            println!(
                "factory reset: {verb} crypto-shred and delete {}",
                reset.erased.join(", ")
            );
        }
        if reset.tpm_objects_flushed > 0 {
            println!(
                "factory reset: flushed {} TPM objects",
                reset.tpm_objects_flushed
            );
        }
    }
    if r.added.is_empty() {
        println!("the disk is complete: nothing to add");
    }
    for a in &r.added {
        let p = &a.planned;
        println!(
            "{verb} add {} `{}` at {} MiB, {} MiB{}{}",
            p.kind,
            p.label,
            p.offset >> 20,
            p.size >> 20,
            match a.luks_uuid {
                Some(u) => format!(", LUKS2 {u}"),
                None if p.encrypted() => ", LUKS2".to_string(),
                None => String::new(),
            },
            match p.format {
                Some(f) if a.formatted => format!(", {f}"),
                _ => String::new(),
            }
        );
    }
    if let Some(p) = r.protection {
        println!("encrypted partitions open with: {p}");
    }
    for w in &r.warnings {
        eprintln!("osimage: warning: {w}");
    }
}

fn open_tpm(setting: &str) -> anyhow::Result<Option<Tpm>> {
    match setting {
        "none" => Ok(None),
        "auto" => {
            if Path::new("/dev/tpmrm0").exists() {
                Ok(Some(Tpm::open(&"device:/dev/tpmrm0".parse()?)?))
            } else {
                tracing::warn!("no /dev/tpmrm0: continuing without a TPM");
                Ok(None)
            }
        }
        spec => {
            let spec: TctiSpec = spec.parse()?;
            Ok(Some(Tpm::open(&spec)?))
        }
    }
}

/// Writes the key to a file only its owner can read, whole or not at all.
fn write_key_file(path: &Path, key: &RecoveryKey) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    writeln!(f, "{}", key.key)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn run_hook(hook: &str, key: &RecoveryKey) -> std::io::Result<()> {
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(hook)
        .env("OSIMAGE_RECOVERY_PARTITIONS", key.partitions.join(" "))
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{}", key.key)?;
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "the recovery key hook `{hook}` failed ({status})"
        )));
    }
    Ok(())
}

fn show_on_console(key: &RecoveryKey) -> std::io::Result<()> {
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "\n🔐 The recovery key for {} (write it down: it is shown once):\n\n    {}\n",
        key.partitions.join(", "),
        key.key
    )
}

fn run(args: FirstbootArgs) -> anyhow::Result<Report> {
    let config = FirstbootConfig::load(&args.config)?;
    let definitions_dir = args.definitions.unwrap_or(config.definitions.clone());
    let defs = repart_conf::load_dir(&definitions_dir)?;
    let staging = args.staging.unwrap_or(config.staging.clone());
    std::fs::create_dir_all(&staging).map_err(|e| anyhow::anyhow!("{}: {e}", staging.display()))?;
    let mut tpm = open_tpm(args.tpm.as_deref().unwrap_or(&config.tpm))?;
    let key_path = args.pcr_public_key.unwrap_or(config.pcr_public_key.clone());
    let mut binding = Tpm2Binding {
        pcrs: config.pcrs.clone(),
        signed: None,
    };
    if !config.signed_pcrs.is_empty() {
        match std::fs::read_to_string(&key_path) {
            Ok(pem) => binding.signed = Some((pem, config.signed_pcrs.clone())),
            Err(e) => tracing::warn!(
                "{}: {e}: binding to PCRs {:?} only, without a signed policy",
                key_path.display(),
                binding.pcrs
            ),
        }
    }
    let vars = EfiVars::at_or_system(args.efivars.as_deref());
    let cmdline = std::fs::read_to_string(&args.cmdline).unwrap_or_default();
    let mut request = BootRequest {
        vars,
        cmdline: reset::cmdline_request(&cmdline),
        done: staging.join("factory-reset-done"),
    };
    let hook = config.recovery_key_hook.clone();
    let key_file = args.recovery_key_file.clone();
    let mut show = move |key: &RecoveryKey| match (&key_file, hook.trim()) {
        (Some(path), _) => write_key_file(path, key),
        (None, "") => show_on_console(key),
        (None, hook) => run_hook(hook, key),
    };
    let disk_path = resolve_disk(&args.disk, args.efivars.as_deref())?;
    // A read-only look first. On every boot after the first the disk is complete,
    // and a disk opened for writing makes udev re-read its partition table once it
    // is closed: in the initrd that pulls root's partition out from under
    // systemd-cryptsetup, and the boot times out waiting for it (seen in the VM).
    // The disk is opened for writing only when the look finds work.
    let mut look = !args.dry_run;
    loop {
        let open = if look {
            FileDisk::open_read_only(&disk_path)
        } else {
            FileDisk::open(&disk_path)
        };
        let mut disk = open.map_err(|e| anyhow::anyhow!("{}: {e}", disk_path.display()))?;
        let mut block = if look {
            None
        } else {
            SystemBlockDevice::open(&disk_path)?
        };
        let mut report = firstboot::run(
            &mut disk,
            Firstboot {
                definitions: &defs,
                tpm: tpm.as_mut(),
                binding: &binding,
                without_tpm: config.without_tpm,
                reset: &mut request,
                staging: &staging,
                show_recovery_key: &mut show,
                block: block.as_mut().map(|b| b as &mut dyn firstboot::BlockDevice),
                dry_run: look || args.dry_run,
            },
        )?;
        if !look {
            let changed_a_block_device = block.is_some();
            // Closing releases the lock udev waits on.
            drop(block);
            drop(disk);
            if changed_a_block_device {
                osimage::firstboot::blockdev::settle_udev();
            }
            return Ok(report);
        }
        if report.added.is_empty() && report.reset.is_none() {
            report.dry_run = false;
            return Ok(report);
        }
        look = false;
    }
}

/// `--disk`: a path, or `auto` for the boot disk.
pub(crate) fn resolve_disk(disk: &Path, efivars: Option<&Path>) -> anyhow::Result<PathBuf> {
    if disk != Path::new("auto") {
        return Ok(disk.to_owned());
    }
    let vars = EfiVars::at_or_system(efivars).ok_or_else(|| {
        anyhow::anyhow!(
            "--disk auto: no efivarfs at {} (not booted with UEFI?); give --disk DEVICE",
            efivars.map_or_else(
                || osimage::boot::efivars::DEFAULT_ROOT.to_owned(),
                |p| p.display().to_string()
            )
        )
    })?;
    let found = bootdisk::boot_disk(
        vars.root(),
        Path::new("/dev"),
        Path::new("/sys/class/block"),
    )?;
    tracing::info!("--disk auto: the boot disk is {}", found.display());
    Ok(found)
}

/// `osimage status`.
pub(crate) fn status_cmd(disk: &Path, efivars: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let disk = &resolve_disk(disk, efivars)?;
    let d = FileDisk::open(disk).map_err(|e| anyhow::anyhow!("{}: {e}", disk.display()))?;
    let status = firstboot::status::disk_status(&d)
        .map_err(|e| anyhow::anyhow!("{}: {e}", disk.display()))?;
    let vars = EfiVars::at_or_system(efivars);
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let reset = reset::status(vars.as_ref(), None, &cmdline)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "disk": disk,
                "partitions": status.partitions,
                "encryption": status.encryption,
                "factoryReset": reset,
            }))?
        );
        return Ok(());
    }
    for p in &status.partitions {
        let luks = match (&p.protection, &p.damaged) {
            (Some(prot), _) => match &p.integrity {
                Some(i) => format!("  LUKS2 + integrity {i}, opens with: {prot}"),
                None => format!("  LUKS2, opens with: {prot}"),
            },
            (None, Some(why)) => format!("  LUKS2, DAMAGED: {why}"),
            _ => String::new(),
        };
        println!(
            "{:>3} {:<15} {:<16} {:>8} MiB{luks}",
            p.number,
            p.kind.to_string(),
            p.label,
            p.size >> 20
        );
    }
    match status.encryption {
        Some(p) => println!("encryption: {p}"),
        None => println!("encryption: no encrypted partitions"),
    }
    println!("{}", reset.describe());
    Ok(())
}
