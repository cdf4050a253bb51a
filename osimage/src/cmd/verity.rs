//! `osimage verity`.

use anyhow::Context;

use std::fs::File;

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
