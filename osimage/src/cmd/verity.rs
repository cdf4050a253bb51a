//! `osimage verity`.

use anyhow::Context;

use std::fs::File;
use std::path::Path;

use osimage::verity::{self, VerityParams};

use crate::VerityCommand;

pub(crate) fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
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

pub(crate) fn verity_cmd(cmd: VerityCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        VerityCommand::CheckUsr {
            disk,
            cert,
            cmdline,
        } => check_usr(&disk, &cert, &cmdline, json),
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
            let tree = verity::build(&f, 0, size, &params, |n| bar.inc(n))?;
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

/// The largest signature partition read: the JSON is a few KiB; a huge partition
/// of that type is not one osimage or repart wrote.
const SIG_MAX: u64 = 1 << 20;

fn check_usr(disk: &Path, cert: &Path, cmdline: &Path, json: bool) -> anyhow::Result<()> {
    use osimage::disk::{Disk, FileDisk, read_gpt};
    use osimage::gpt::types::PartitionType;
    use osimage::verity::sig::{VeritySig, check_usr, usrhash};

    let line =
        std::fs::read_to_string(cmdline).with_context(|| format!("read {}", cmdline.display()))?;
    let hash = usrhash(&line).with_context(|| {
        format!(
            "no usrhash= in {}: /usr is not verity-protected",
            cmdline.display()
        )
    })?;
    let pem = std::fs::read(cert).with_context(|| format!("read {}", cert.display()))?;
    let trusted = <x509_cert::Certificate as der::DecodePem>::from_pem(&pem)
        .with_context(|| format!("{}: not a PEM X.509 certificate", cert.display()))?;
    let path = crate::cmd::firstboot::resolve_disk(disk, None)?;
    let dev =
        FileDisk::open_read_only(&path).with_context(|| format!("open {}", path.display()))?;
    let gpt = read_gpt(&dev).with_context(|| format!("{}: GPT", path.display()))?;
    let ss = u64::from(gpt.sector_size);
    let mut sigs = Vec::new();
    let mut labels = Vec::new();
    for p in gpt
        .partitions
        .iter()
        .filter(|p| p.kind == PartitionType::UsrVeritySig)
    {
        let len = (p.sectors() * ss).min(SIG_MAX);
        let mut raw = vec![0u8; len as usize];
        dev.read_at(p.first_lba * ss, &mut raw)?;
        match VeritySig::from_partition(&raw) {
            Ok(sig) => {
                sigs.push(sig);
                labels.push(p.label.clone());
            }
            // An `_empty` slot holds no JSON yet.
            Err(e) => tracing::debug!(label = p.label, %e, "not a signature"),
        }
    }
    let i = check_usr(hash, &sigs, &trusted)?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "usrhash": hash,
                "partition": labels[i],
                "certificate": cert,
                "signed": true,
            })
        );
    } else {
        println!(
            "usrhash={hash}: signed ({} on {}, checked with {})",
            labels[i],
            path.display(),
            cert.display()
        );
    }
    Ok(())
}
