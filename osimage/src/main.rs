use std::fs::File;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use osimage::verity::{self, VerityParams};

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
    /// dm-verity hash trees, compatible with veritysetup.
    #[command(subcommand)]
    Verity(VerityCommand),
}

#[derive(Debug, Subcommand)]
enum VerityCommand {
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
        Command::Verity(cmd) => match verity_cmd(cmd, cli.json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("osimage: error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

fn verity_cmd(cmd: VerityCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        VerityCommand::Format {
            data,
            hash,
            salt,
            seed,
            uuid,
            data_block_size,
            hash_block_size,
            dry_run,
        } => {
            let salt = match salt {
                Some(hex_salt) => hex::decode(&hex_salt).context("--salt is not hex")?,
                None => verity::derive_salt(seed.as_bytes(), "verity"),
            };
            let uuid = uuid.map_or_else(
                || {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(&verity::derive_salt(&salt, "uuid")[..16]);
                    // RFC 4122 version 4 / variant bits, as veritysetup's UUIDs have.
                    b[6] = (b[6] & 0x0f) | 0x40;
                    b[8] = (b[8] & 0x3f) | 0x80;
                    b
                },
                |u| *u.as_bytes(),
            );
            let params = VerityParams {
                data_block_size,
                hash_block_size,
                salt,
                uuid,
            };
            let f = File::open(&data).with_context(|| format!("open {}", data.display()))?;
            let size = f.metadata()?.len();
            let bar = progress_bar(size, "hashing");
            if json {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let tree = verity::build(&f, 0, size, &params, |done| bar.set_position(done))?;
            bar.finish_and_clear();
            if !dry_run {
                // Written whole, then renamed, so a crash never leaves a half tree
                // under the final name.
                let tmp = hash.with_extension("osimage-tmp");
                std::fs::write(&tmp, &tree.hash_device)
                    .with_context(|| format!("write {}", tmp.display()))?;
                std::fs::rename(&tmp, &hash)
                    .with_context(|| format!("rename to {}", hash.display()))?;
            }
            let root = hex::encode(tree.root_hash);
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "rootHash": root,
                        "salt": hex::encode(&params.salt),
                        "uuid": uuid::Uuid::from_bytes(uuid).to_string(),
                        "dataBlocks": tree.superblock.data_blocks,
                        "dataBlockSize": data_block_size,
                        "hashBlockSize": hash_block_size,
                        "hashDeviceSize": tree.hash_device.len(),
                        "written": !dry_run,
                    })
                );
            } else {
                println!("UUID:            {}", uuid::Uuid::from_bytes(uuid));
                println!("Data blocks:     {}", tree.superblock.data_blocks);
                println!("Salt:            {}", hex::encode(&params.salt));
                println!(
                    "Hash device:     {} bytes{}",
                    tree.hash_device.len(),
                    if dry_run {
                        " (dry run, not written)"
                    } else {
                        ""
                    }
                );
                println!("Root hash:       {root}");
            }
            Ok(())
        }
        VerityCommand::Verify {
            data,
            hash,
            root_hash,
        } => {
            let root = hex::decode(&root_hash).context("root hash is not hex")?;
            let d = File::open(&data).with_context(|| format!("open {}", data.display()))?;
            let h = File::open(&hash).with_context(|| format!("open {}", hash.display()))?;
            let sb = verity::verify(&d, 0, &h, 0, &root)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "valid": true, "dataBlocks": sb.data_blocks })
                );
            } else {
                println!(
                    "valid: {} data blocks match root hash {root_hash}",
                    sb.data_blocks
                );
            }
            Ok(())
        }
    }
}
