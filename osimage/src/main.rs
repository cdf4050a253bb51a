use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use clap::{Parser, Subcommand};

mod cmd;

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
    /// Build a signed disk image (GPT: ESP with systemd-boot and the UKI, usr,
    /// usr-verity, usr-verity-sig) from an image.toml.
    ///
    /// Exit status: 0 built, 1 failed (nothing written), 2 usage.
    Build {
        /// The image definition.
        #[arg(long, short = 'd')]
        definition: PathBuf,
        /// The disk image to write (replaced atomically).
        #[arg(long, short = 'o')]
        output: PathBuf,
        /// Build in a scratch directory and print the plan; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Warn instead of failing when the /usr tree holds /etc or /var content
        /// (a hermetic-/usr violation); the same as `usr.allow-non-hermetic = true`.
        #[arg(long)]
        allow_non_hermetic: bool,
    },
    /// Check an image against its `<image>.intoto.jsonl` SLSA provenance: the DSSE
    /// signature, the image digest and every partition's digest.
    ///
    /// Exit status: 0 verified, 1 not.
    VerifyProvenance {
        image: PathBuf,
        /// Certificate of the key the provenance was signed with.
        #[arg(long)]
        cert: PathBuf,
    },
    /// Install a built image onto a disk by adding to it: a GPT on an empty disk, or
    /// new partitions in the free space of one that holds other systems.
    ///
    /// Exit status: 0 installed (or planned), 1 error (nothing written).
    Install {
        #[arg(long)]
        image: PathBuf,
        /// Block device or image file.
        #[arg(long)]
        target: PathBuf,
        /// Boot counting tries for the UKI (`<name>_<version>+N.efi`); 0 disables.
        #[arg(long, default_value_t = 3)]
        tries: u32,
        /// Install even onto a disk that is mounted or in use.
        #[arg(long)]
        force: bool,
        /// Print the plan; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Publish a built image's update files (usr, usr-verity, usr-verity-sig, UKI) into
    /// DIR and (re)write the signed SHA256SUMS manifest over DIR.
    Publish {
        /// The directory an update server serves; versions already in it stay listed.
        dir: PathBuf,
        /// A disk image made by `osimage build`.
        #[arg(long)]
        image: PathBuf,
        /// The vendor's private key (PEM) that signs SHA256SUMS.p7s.
        #[arg(long)]
        key: PathBuf,
        /// The vendor's certificate (PEM), the one `update --vendor-cert` trusts.
        #[arg(long)]
        cert: PathBuf,
    },
    /// A/B update of a disk from an HTTP(S) URL or a directory.
    ///
    /// Exit status: 0 updated or up to date, 1 error (nothing activated), 3 refused by
    /// policy.
    Update(cmd::update::UpdateArgs),
    /// Make a signing key (RSA 2048 or EC P-256, PEM) and a self-signed certificate.
    Genkey(cmd::genkey::GenkeyArgs),
    /// Build a unified kernel image from systemd's EFI stub.
    Uki(UkiArgs),
    /// Boot assessment: entries, boot counting, blessing, default and one-shot choice.
    Boot {
        /// A disk image (or block device) whose ESP/XBOOTLDR to act on, instead of the
        /// mounted /efi or /boot.
        #[arg(long, global = true)]
        image: Option<PathBuf>,
        /// A mounted ESP or XBOOTLDR directory.
        #[arg(long, global = true, conflicts_with = "image")]
        esp: Option<PathBuf>,
        #[command(subcommand)]
        command: BootCommand,
    },
    /// Predict the PCR 11 values systemd's stub and systemd-pcrphase produce for a UKI.
    Pcr {
        #[command(subcommand)]
        command: PcrCommand,
    },
    /// dm-verity hash trees, compatible with veritysetup.
    #[command(subcommand)]
    Verity(VerityCommand),
    /// Request, cancel or show a factory reset (systemd's FactoryReset EFI variable),
    /// honoured in the initrd on the next boot. Without efivarfs, a one-shot boot
    /// entry on the ESP starts the next boot with systemd.factory_reset=yes (this
    /// needs Secure Boot off: systemd-stub ignores entry options under it).
    ///
    /// Exit status: 0 done, 1 error, 3 neither efivarfs nor an ESP to record it on.
    FactoryReset {
        /// An efivarfs directory instead of /sys/firmware/efi/efivars.
        #[arg(long, global = true)]
        efivars: Option<PathBuf>,
        /// A mounted ESP (default: the first of /efi, /boot/efi, /boot with EFI/Linux).
        #[arg(long, global = true)]
        esp: Option<PathBuf>,
        /// The ESP inside this disk image or block device instead.
        #[arg(long, global = true, conflicts_with = "esp")]
        image: Option<PathBuf>,
        /// Say what would change; write nothing.
        #[arg(long, global = true)]
        dry_run: bool,
        #[command(subcommand)]
        command: ResetCommand,
    },
    /// Complete an installed disk in the initrd: add the B usr slot and the encrypted
    /// root, home and swap from the partition definitions, in free space only, with
    /// LUKS2 keys made here and bound to the TPM2, and a recovery key shown once.
    /// On a block device it also makes their file systems (Format=). Honours a
    /// factory reset request. Safe to run on every boot.
    ///
    /// Exit status: 0 done (or nothing to do), 1 error, 5 the TPM cannot be used as it
    /// is (dictionary-attack lockout, no sha256 bank, or none where one is required),
    /// 6 the definitions do not fit the disk (too small, a conflicting partition, an
    /// unreadable LUKS2 header). On 1, 5 and 6 nothing outside free space was written.
    Firstboot(cmd::firstboot::FirstbootArgs),
    /// Show a disk's partitions, how each encrypted one opens (TPM2 and recovery key,
    /// or the weaker recovery-key-only mode firstboot uses without a TPM), and whether
    /// a factory reset is pending.
    ///
    /// Exit status: 0 shown, 1 error.
    Status {
        /// The disk: a block device or an image file, or `auto` for the boot disk.
        #[arg(long)]
        disk: PathBuf,
        /// An efivarfs directory instead of /sys/firmware/efi/efivars.
        #[arg(long)]
        efivars: Option<PathBuf>,
    },
    /// Recover a LUKS2 volume's key from its systemd-tpm2 token through the TPM and
    /// open the volume (or, with --test, only check the key against its keyslot).
    ///
    /// Reads tokens enrolled by systemd-cryptenroll. Exit status: 0 unlocked (or key
    /// verified), 1 error, 4 the TPM refused this boot state (PCR mismatch, no valid
    /// signed policy: use the recovery key), 5 no usable TPM (missing, or in
    /// dictionary-attack lockout).
    Unlock {
        /// The LUKS2 device or image.
        #[arg(long)]
        device: PathBuf,
        /// Check the recovered key against the keyslot; activate nothing.
        #[arg(long)]
        test: bool,
        /// The device-mapper name to open the volume as.
        #[arg(long, default_value = "root", conflicts_with = "test")]
        name: String,
        /// The TPM: device:/dev/tpmrm0 or swtpm:host=H,port=N.
        #[arg(long, default_value = "device:/dev/tpmrm0")]
        tpm: String,
        /// Signed PCR policies (a UKI's .pcrsig JSON), for tokens bound through
        /// tpm2_pubkey. The stub drops it at /.extra/tpm2-pcr-signature.json.
        #[arg(long)]
        signature: Option<PathBuf>,
        /// Use only this token (by LUKS2 token id) instead of trying each in turn.
        #[arg(long)]
        token: Option<u32>,
    },
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub(crate) enum ResetCommand {
    /// Erase and re-create every FactoryReset partition on the next boot.
    Request,
    /// Withdraw a pending request.
    Cancel,
    /// What the next boot will do.
    Status,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BootCommand {
    /// Every entry with version, tries left and done, good/bad, default, booted.
    Status,
    /// Mark the booted entry (or --entry) good by dropping its counter.
    ///
    /// Exit status: 0 blessed or already good, 1 error.
    Bless {
        #[arg(long)]
        entry: Option<String>,
    },
    /// Mark an entry bad (no tries left), so systemd-boot passes over it.
    MarkBad { entry: String },
    /// Set the default entry (EFI variable LoaderEntryDefault).
    SetDefault { id: String },
    /// Boot this entry next time only (EFI variable LoaderEntryOneShot).
    Oneshot { id: String },
}

#[derive(Debug, Subcommand)]
enum PcrCommand {
    /// Print PCR 11 after the stub's measurement and after each boot phase.
    Predict {
        /// The UKI to read sections from.
        #[arg(long)]
        uki: PathBuf,
        /// Phase paths, e.g. `enter-initrd:leave-initrd`; default: the stub alone
        /// and systemd-measure's four phases.
        #[arg(long)]
        phase: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum VerityCommand {
    /// Hash DATA into a new HASH device (superblock + tree), like `veritysetup format`.
    Format {
        data: PathBuf,
        hash: PathBuf,
        /// Salt as hex; default: derived from --seed.
        #[arg(long)]
        salt: Option<String>,
        /// Seed for the derived salt (a rebuild with the same seed is byte-identical).
        #[arg(long, default_value = "osimage")]
        seed: String,
        /// UUID stored in the superblock; default: derived from the salt.
        #[arg(long)]
        uuid: Option<uuid::Uuid>,
        #[arg(long, default_value_t = 4096)]
        data_block_size: u32,
        #[arg(long, default_value_t = 4096)]
        hash_block_size: u32,
        /// Compute and print, but write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// In the initrd, before systemd-veritysetup@usr: checks that the
    /// usr-verity-sig partition for the kernel command line's `usrhash=` is signed
    /// by the trusted certificate (the image's own, inside the signed UKI). The
    /// kernel's keyring does not hold that certificate, so systemd's
    /// `root-hash-signature=` cannot make this check.
    ///
    /// Exit status: 0 signed, 1 error, 4 unsigned or a bad signature.
    CheckUsr {
        /// The disk, or `auto` for the one the firmware booted from.
        #[arg(long, default_value = "auto")]
        disk: PathBuf,
        /// The trusted verity certificate (PEM).
        #[arg(long, default_value = "/usr/lib/osimage/verity.crt")]
        cert: PathBuf,
        /// Where the kernel command line is read from.
        #[arg(long, default_value = "/proc/cmdline")]
        cmdline: PathBuf,
    },
    /// Check DATA against HASH and ROOT_HASH, like `veritysetup verify`.
    ///
    /// Exit status: 0 valid, 1 mismatch or error.
    Verify {
        data: PathBuf,
        hash: PathBuf,
        root_hash: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Units log to the journal, which keeps a line with colour codes as a blob.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
        Command::FactoryReset {
            efivars,
            esp,
            image,
            dry_run,
            command,
        } => cmd::reset::reset_cmd(
            command,
            efivars.as_deref(),
            esp.as_deref(),
            image.as_deref(),
            dry_run,
            cli.json,
        ),
        Command::Firstboot(args) => cmd::firstboot::firstboot_cmd(args, cli.json),
        Command::Status { disk, efivars } => report(cmd::firstboot::status_cmd(
            &disk,
            efivars.as_deref(),
            cli.json,
        )),
        Command::Unlock {
            device,
            test,
            name,
            tpm,
            signature,
            token,
        } => cmd::unlock::unlock_cmd(
            &cmd::unlock::UnlockArgs {
                device: &device,
                test,
                name: &name,
                tpm: &tpm,
                signature: signature.as_deref(),
                token,
            },
            cli.json,
        ),
        Command::Build {
            definition,
            output,
            dry_run,
            allow_non_hermetic,
        } => report(build_cmd(
            &definition,
            &output,
            dry_run,
            allow_non_hermetic,
            cli.json,
        )),
        Command::VerifyProvenance { image, cert } => report((|| {
            let v = osimage::provenance::verify(&image, &cert)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "verified: {} subjects, {} materials, signed by {}",
                    v.subjects.len(),
                    v.materials,
                    v.keyid
                );
            }
            Ok(())
        })()),
        Command::Install {
            image,
            target,
            tries,
            force,
            dry_run,
        } => report((|| {
            let opts = osimage::install::InstallOptions {
                tries: (tries > 0).then_some(tries),
                loader_conf: "timeout 3\neditor no\n".into(),
                force,
                dry_run,
            };
            let plan = osimage::install::install(&image, &target, &opts)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                println!(
                    "{} {}_{} onto {}{}",
                    if dry_run {
                        "would install"
                    } else {
                        "installed"
                    },
                    plan.name,
                    plan.version,
                    target.display(),
                    if plan.new_table { " (new GPT)" } else { "" }
                );
                for p in &plan.add {
                    println!(
                        "  add {:<16} {:<20} offset {:>12} size {:>12}",
                        p.kind.to_string(),
                        p.label,
                        p.offset,
                        p.size
                    );
                }
                println!("  UKI {} on the {}", plan.uki, plan.boot_partition);
            }
            Ok(())
        })()),
        Command::Publish {
            dir,
            image,
            key,
            cert,
        } => report((|| {
            let id = osimage::sign::SigningIdentity::load(&key, &cert)?;
            let p = osimage::update::publish::publish(&image, &dir, &id)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                println!(
                    "published {}_{}: {} ({} files in SHA256SUMS)",
                    p.name,
                    p.version,
                    p.files.join(", "),
                    p.manifest_entries
                );
            }
            Ok(())
        })()),
        Command::Update(args) => cmd::update::update_cmd(args, cli.json),
        Command::Genkey(args) => report(cmd::genkey::genkey_cmd(&args, cli.json)),
        Command::Uki(args) => report(uki_cmd(&args)),
        Command::Boot {
            image,
            esp,
            command,
        } => report(cmd::boot::boot_cmd(image, esp, command, cli.json)),
        Command::Pcr {
            command: PcrCommand::Predict { uki, phase },
        } => report(pcr_predict(&uki, &phase, cli.json)),
        Command::Verity(cmd) => match cmd::verity::verity_cmd(cmd, cli.json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("osimage: error: {e:#}");
                if e.downcast_ref::<osimage::verity::sig::UsrSigError>()
                    .is_some()
                {
                    ExitCode::from(4)
                } else {
                    ExitCode::FAILURE
                }
            }
        },
    }
}

fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("osimage: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn build_cmd(
    definition: &std::path::Path,
    output: &std::path::Path,
    dry_run: bool,
    allow_non_hermetic: bool,
    json: bool,
) -> anyhow::Result<()> {
    let def = osimage::definition::ImageDefinition::load(definition)?;
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse()
            .context("SOURCE_DATE_EPOCH is not a number")?,
        Err(_) => 0,
    };
    let spinner = indicatif::ProgressBar::new_spinner();
    if json {
        spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    spinner.set_message(format!("building {}_{}", def.image.name, def.image.version));
    let opts = osimage::build::BuildOptions {
        output: output.to_owned(),
        dry_run,
        source_date_epoch: epoch,
        allow_non_hermetic,
    };
    let result = osimage::build::build(&def, &opts);
    spinner.finish_and_clear();
    let report = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} {}_{} ({} bytes, {}-byte sectors){}",
        if dry_run { "would build" } else { "built" },
        report.name,
        report.version,
        report.plan.disk_size,
        report.plan.sector_size,
        if dry_run {
            String::new()
        } else {
            format!(" -> {}", output.display())
        }
    );
    println!("root hash  {}", report.root_hash);
    println!("uki        {} (sha256 {})", report.uki, report.uki_sha256);
    println!(
        "{:<16} {:<24} {:>12} {:>12}  uuid",
        "type", "label", "offset", "size"
    );
    for p in &report.plan.partitions {
        println!(
            "{:<16} {:<24} {:>12} {:>12}  {}",
            p.kind.to_string(),
            p.label,
            p.offset,
            p.size,
            p.uuid
        );
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    Ok(())
}

fn pcr_predict(uki: &std::path::Path, phases: &[String], json: bool) -> anyhow::Result<()> {
    let image = std::fs::read(uki).with_context(|| format!("read {}", uki.display()))?;
    let layout =
        osimage::uki::pe::PeLayout::parse(&image).with_context(|| uki.display().to_string())?;
    let mut sections = Vec::new();
    for s in &layout.sections {
        if let Some(data) = osimage::uki::pe::section_data(&image, &s.name)? {
            sections.push((s.name.as_str(), data));
        }
    }
    let phases: Vec<&str> = if phases.is_empty() {
        std::iter::once("")
            .chain(osimage::pcr::DEFAULT_PHASES)
            .collect()
    } else {
        phases.iter().map(String::as_str).collect()
    };
    let predictions = osimage::pcr::predict(&sections, &phases);
    if json {
        println!("{}", serde_json::json!({ "sha256": predictions }));
    } else {
        for p in predictions {
            let phase = if p.phase.is_empty() {
                "(stub only)"
            } else {
                p.phase.as_str()
            };
            println!("# PCR[11] Phase <{phase}>\n11:sha256={}", p.hash);
        }
    }
    Ok(())
}

/// `osimage uki`'s arguments.
#[derive(Debug, clap::Args)]
struct UkiArgs {
    /// systemd's EFI stub (`linuxx64.efi.stub`).
    #[arg(long)]
    stub: PathBuf,
    /// The kernel image for `.linux`.
    #[arg(long)]
    kernel: PathBuf,
    /// Initrds for `.initrd`, concatenated in the order given.
    #[arg(long)]
    initrd: Vec<PathBuf>,
    /// The os-release file for `.osrel`.
    #[arg(long)]
    os_release: PathBuf,
    /// The kernel command line for `.cmdline`.
    #[arg(long, default_value = "")]
    cmdline: String,
    /// A boot splash image (BMP) for the `.splash` section.
    #[arg(long)]
    splash: Option<PathBuf>,
    /// The PCR signing key (PEM): adds `.pcrpkey` and a `.pcrsig` with the signed
    /// PCR 11 policy of each boot phase, as `osimage build` does.
    #[arg(long)]
    pcr_key: Option<PathBuf>,
    /// The UKI to write (replaced atomically).
    #[arg(long, short = 'o')]
    output: PathBuf,
}

fn uki_cmd(args: &UkiArgs) -> anyhow::Result<()> {
    let read =
        |p: &std::path::Path| std::fs::read(p).with_context(|| format!("read {}", p.display()));
    // Keys first: a bad key fails before any work.
    let pcr_key = args
        .pcr_key
        .as_deref()
        .map(osimage::sign::load_key)
        .transpose()?;
    let linux = read(&args.kernel)?;
    let mut initrd_bytes = Vec::new();
    for p in &args.initrd {
        initrd_bytes.extend(read(p)?);
    }
    let mut spec = osimage::uki::UkiSpec {
        osrel: read(&args.os_release)?,
        cmdline: args.cmdline.clone(),
        uname: osimage::uki::kernel_release(&linux),
        splash: args.splash.as_deref().map(read).transpose()?,
        initrd: initrd_bytes,
        linux,
        ..Default::default()
    };
    if let Some(key) = &pcr_key {
        osimage::build::sign_pcr_policy(&mut spec, key)?;
    }
    let image = spec.build_from_file(&args.stub)?;
    let tmp = args.output.with_extension("efi.tmp");
    std::fs::write(&tmp, &image).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.output)
        .with_context(|| format!("rename to {}", args.output.display()))?;
    println!("{}", args.output.display());
    Ok(())
}
