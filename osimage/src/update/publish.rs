//! `osimage publish`: the update files of a built image, and a signed manifest over
//! everything in the directory.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::catalog::file_name;
use super::manifest::{MANIFEST, Manifest, SIGNATURE};
use super::slots;
use crate::disk::{Disk, FileDisk, read_gpt};
use crate::sign::SigningIdentity;
use crate::verity::{TreeLayout, VeritySuperblock};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{}: {why}", path.display())]
    Image { path: PathBuf, why: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sign(#[from] crate::sign::SignError),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub name: String,
    pub version: String,
    pub files: Vec<String>,
    pub manifest_entries: usize,
}

/// The used size of a read-only file system image: erofs from its superblock's block
/// count, squashfs from `bytes_used`; rounded up to 4 KiB.
pub fn fs_size(head: &[u8]) -> Option<(u64, &'static str)> {
    let u32_at = |o: usize| {
        head.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    if u32_at(1024) == Some(0xE0F5_E1E2) {
        let bits = *head.get(1024 + 12)? as u32;
        let blocks = u32_at(1024 + 36)? as u64;
        return Some((blocks << bits, "erofs"));
    }
    if head.get(..4) == Some(b"hsqs") {
        let used = u64::from_le_bytes(head.get(40..48)?.try_into().ok()?);
        return Some((used.div_ceil(4096) * 4096, "squashfs"));
    }
    None
}

fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<(), PublishError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |source| PublishError::Io {
        path: path.clone(),
        source,
    };
    std::fs::write(&tmp, data).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

pub fn publish(
    image: &Path,
    dir: &Path,
    vendor: &SigningIdentity,
) -> Result<Published, PublishError> {
    let bad = |why: String| PublishError::Image {
        path: image.to_owned(),
        why,
    };
    let mut disk = FileDisk::open(image).map_err(|source| PublishError::Io {
        path: image.to_owned(),
        source,
    })?;
    let gpt = read_gpt(&disk).map_err(|e| bad(e.to_string()))?;
    let slots::BuiltVersion {
        name,
        version,
        slot,
        uki,
    } = slots::built_version(&mut disk, &gpt).map_err(bad)?;
    let ss = gpt.sector_size as u64;
    let off = |i: usize| gpt.partitions[i].first_lba * ss;
    let read = |disk: &FileDisk, at: u64, len: u64| -> Result<Vec<u8>, PublishError> {
        let mut v = vec![0u8; len as usize];
        disk.read_at(at, &mut v)
            .map_err(|source| PublishError::Io {
                path: image.to_owned(),
                source,
            })?;
        Ok(v)
    };

    let head = read(&disk, off(slot.usr_index), 4096.min(slot.usr_size))?;
    let (usr_len, fmt) = fs_size(&head)
        .ok_or_else(|| bad("usr partition holds neither erofs nor squashfs".into()))?;
    let sb = VeritySuperblock::decode(&read(&disk, off(slot.verity_index), 512)?)
        .map_err(|e| bad(e.to_string()))?;
    let hash_len = TreeLayout::new(sb.data_blocks, sb.hash_block_size).hash_device_size();
    let sig_raw = read(&disk, off(slot.sig_index), slot.sig_size)?;
    let sig_len = sig_raw
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(sig_raw.len())
        .div_ceil(4096)
        * 4096;

    std::fs::create_dir_all(dir).map_err(|source| PublishError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let parts = [
        (
            file_name(&name, &version, "usr", fmt),
            read(&disk, off(slot.usr_index), usr_len)?,
        ),
        (
            file_name(&name, &version, "usr-verity", fmt),
            read(&disk, off(slot.verity_index), hash_len)?,
        ),
        (
            file_name(&name, &version, "usr-verity-sig", fmt),
            sig_raw[..sig_len].to_vec(),
        ),
        (file_name(&name, &version, "efi", fmt), uki),
    ];
    for (n, data) in &parts {
        write_atomic(dir, n, data)?;
    }

    // The manifest covers every published file in the directory (older versions too).
    let mut manifest = Manifest::default();
    let entries = std::fs::read_dir(dir).map_err(|source| PublishError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for e in entries.filter_map(|e| e.ok()) {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with('.') || n == MANIFEST || n == SIGNATURE || !e.path().is_file() {
            continue;
        }
        let data = std::fs::read(e.path()).map_err(|source| PublishError::Io {
            path: e.path(),
            source,
        })?;
        manifest.files.insert(n, hex::encode(Sha256::digest(&data)));
    }
    let text = manifest.format();
    let sig = vendor.sign_pkcs7_detached(text.as_bytes())?;
    write_atomic(dir, MANIFEST, text.as_bytes())?;
    write_atomic(dir, SIGNATURE, &sig)?;
    Ok(Published {
        name,
        version,
        files: parts.into_iter().map(|(n, _)| n).collect(),
        manifest_entries: manifest.files.len(),
    })
}
