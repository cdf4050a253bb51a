//! `osimage install`: put a built image onto a disk by adding to it. Existing
//! partitions are never moved, resized or overwritten; new ones go into free space.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::boot::BootEntry;
use crate::boot::esp::{self, EspLocation, UKI_DIR};
use crate::build::derived_uuid;
use crate::disk::{Disk, FileDisk, read_gpt, write_gpt};
use crate::gpt::{Gpt, GptPartition, PartitionType, entry_sectors};
use crate::update::{catalog::Slot, slots};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{}: {why}", path.display())]
    Image { path: PathBuf, why: String },
    #[error("{0}")]
    Target(String),
    #[error("not enough free space on the target: {0}")]
    NoRoom(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One partition the install adds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewPartition {
    #[serde(rename = "type")]
    pub kind: PartitionType,
    pub label: String,
    pub offset: u64,
    pub size: u64,
    /// Index of the source partition copied into it, or `None` for a new file system.
    #[serde(skip)]
    pub copy_from: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallPlan {
    pub name: String,
    pub version: String,
    pub new_table: bool,
    pub sector_size: u32,
    pub add: Vec<NewPartition>,
    /// Where the UKI goes: "esp" (existing or new) or "xbootldr".
    pub boot_partition: String,
    pub uki: String,
    pub reuses_esp: bool,
}

/// Free extents (first, last sector inclusive) between partitions.
pub fn free_extents(gpt: &Gpt) -> Vec<(u64, u64)> {
    let mut used: Vec<(u64, u64)> = gpt
        .partitions
        .iter()
        .map(|p| (p.first_lba, p.last_lba))
        .collect();
    used.sort();
    let mut out = Vec::new();
    let mut cursor = gpt.first_usable_lba();
    for (a, b) in used {
        if a > cursor {
            out.push((cursor, a - 1));
        }
        cursor = cursor.max(b + 1);
    }
    if cursor <= gpt.last_usable_lba() {
        out.push((cursor, gpt.last_usable_lba()));
    }
    out
}

/// First fit of `bytes`, 1 MiB aligned, into the free space; marks it used.
pub(crate) fn allocate(free: &mut Vec<(u64, u64)>, bytes: u64, ss: u64) -> Option<(u64, u64)> {
    let align = (1u64 << 20) / ss;
    let sectors = bytes.div_ceil(ss);
    for i in 0..free.len() {
        let (a, b) = free[i];
        let start = a.div_ceil(align) * align;
        // A size from a definition can be absurd; it then fits nowhere.
        let end = start
            .checked_add(sectors)
            .and_then(|e| e.checked_sub(1))
            .filter(|_| sectors > 0)?;
        if end <= b {
            free.remove(i);
            if end < b {
                free.insert(i, (end + 1, b));
            }
            if start > a {
                free.insert(i, (a, start - 1));
            }
            return Some((start, end));
        }
    }
    None
}

/// A device in use: mounted (or a partition of it mounted), or a file backing a loop
/// device.
pub fn in_use(target: &Path) -> io::Result<Option<String>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(target)?;
    if meta.file_type().is_block_device() {
        let rdev = meta.rdev();
        let (major, minor) = (libc::major(rdev), libc::minor(rdev));
        let name = std::fs::read_link(format!("/sys/dev/block/{major}:{minor}"))?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
        for (devno, mountpoint) in crate::mounts::entries(&mounts) {
            let Ok(link) = std::fs::read_link(format!("/sys/dev/block/{devno}")) else {
                continue;
            };
            let s = link.to_string_lossy();
            if s.ends_with(&format!("/{name}")) || s.contains(&format!("/{name}/")) {
                return Ok(Some(format!("mounted at {mountpoint} ({devno})")));
            }
        }
        return Ok(None);
    }
    let canonical = target.canonicalize()?;
    if let Ok(entries) = std::fs::read_dir("/sys/block") {
        for e in entries.filter_map(|e| e.ok()) {
            let backing = e.path().join("loop/backing_file");
            if let Ok(b) = std::fs::read_to_string(&backing)
                && Path::new(b.trim()) == canonical
            {
                return Ok(Some(format!(
                    "backs /dev/{}",
                    e.file_name().to_string_lossy()
                )));
            }
        }
    }
    Ok(None)
}

struct Source {
    disk: FileDisk,
    gpt: Gpt,
    name: String,
    version: String,
    slot: Slot,
    uki: Vec<u8>,
    sd_boot: Option<Vec<u8>>,
}

fn read_source(image: &Path) -> Result<Source, InstallError> {
    let bad = |why: String| InstallError::Image {
        path: image.to_owned(),
        why,
    };
    let mut disk = FileDisk::open(image)?;
    let gpt = read_gpt(&disk).map_err(|e| bad(e.to_string()))?;
    let built = slots::built_version(&mut disk, &gpt).map_err(bad)?;
    let esp_part = gpt
        .partitions
        .iter()
        .find(|p| p.kind == PartitionType::Esp)
        .cloned();
    let sd_boot = match esp_part {
        Some(p) => esp::read_file(
            &mut disk,
            EspLocation::of(&p, gpt.sector_size),
            "EFI/systemd/systemd-bootx64.efi",
        )?,
        None => None,
    };
    Ok(Source {
        disk,
        gpt,
        name: built.name,
        version: built.version,
        slot: built.slot,
        uki: built.uki,
        sd_boot,
    })
}

#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub tries: Option<u32>,
    pub loader_conf: String,
    pub force: bool,
    pub dry_run: bool,
}

/// Plans and, unless `dry_run`, performs the install.
pub fn install(
    image: &Path,
    target: &Path,
    opts: &InstallOptions,
) -> Result<InstallPlan, InstallError> {
    if !opts.force
        && let Some(why) = in_use(target)?
    {
        return Err(InstallError::Target(format!(
            "{} is in use ({why}); refusing without --force",
            target.display()
        )));
    }
    let src = read_source(image)?;
    let mut dst = FileDisk::open(target)?;
    let ss = src.gpt.sector_size as u64;
    let existing = read_gpt(&dst).ok();
    if let Some(g) = &existing
        && g.sector_size != src.gpt.sector_size
    {
        return Err(InstallError::Target(format!(
            "target has {}-byte sectors, the image {}",
            g.sector_size, src.gpt.sector_size
        )));
    }
    let new_table = existing.is_none();
    let mut gpt = existing.unwrap_or_else(|| Gpt {
        disk_guid: derived_uuid(
            &format!("{}-{}", target.display(), dst.size()),
            "install-disk",
        ),
        sector_size: src.gpt.sector_size,
        total_sectors: dst.size() / ss,
        partitions: Vec::new(),
    });
    if dst.size() / ss < 2 * (entry_sectors(gpt.sector_size) + 2) {
        return Err(InstallError::NoRoom(format!(
            "{} bytes is not a disk",
            dst.size()
        )));
    }
    let mut free = free_extents(&gpt);
    let part_size = |i: usize| src.gpt.partitions[i].sectors() * ss;
    let mut add = Vec::new();
    let label = format!("{}_{}", src.name, src.version);
    for (kind, index) in [
        (PartitionType::Usr, src.slot.usr_index),
        (PartitionType::UsrVerity, src.slot.verity_index),
        (PartitionType::UsrVeritySig, src.slot.sig_index),
    ] {
        let (a, b) = allocate(&mut free, part_size(index), ss).ok_or_else(|| {
            InstallError::NoRoom(format!("{kind} needs {} bytes", part_size(index)))
        })?;
        add.push(NewPartition {
            kind,
            label: label.clone(),
            offset: a * ss,
            size: (b - a + 1) * ss,
            copy_from: Some(index),
        });
    }
    // The boot partition: the target's ESP when the UKI (and systemd-boot) fit, else
    // a new XBOOTLDR beside it; a new ESP on a disk without one.
    let needed =
        src.uki.len() as u64 + src.sd_boot.as_ref().map_or(0, |b| 2 * b.len() as u64) + (1 << 20);
    let target_esp = gpt
        .partitions
        .iter()
        .position(|p| p.kind == PartitionType::Esp);
    let fat_size = crate::esp::fat32_min_size(gpt.sector_size as u16)
        .max((needed * 2).div_ceil(1 << 20) << 20);
    let (boot_partition, reuses_esp) = match target_esp {
        Some(i) => {
            let at = EspLocation::of(&gpt.partitions[i], gpt.sector_size);
            let free_bytes = esp::free_bytes(&mut crate::disk::ReadOnly(&dst), at)?;
            if free_bytes >= needed {
                ("esp".to_owned(), true)
            } else {
                let (a, b) = allocate(&mut free, fat_size, ss).ok_or_else(|| {
                    InstallError::NoRoom(format!(
                        "the ESP has {free_bytes} bytes free and there is no room for an XBOOTLDR"
                    ))
                })?;
                add.push(NewPartition {
                    kind: PartitionType::Xbootldr,
                    label: "XBOOTLDR".into(),
                    offset: a * ss,
                    size: (b - a + 1) * ss,
                    copy_from: None,
                });
                ("xbootldr".to_owned(), true)
            }
        }
        None => {
            let (a, b) = allocate(&mut free, fat_size, ss)
                .ok_or_else(|| InstallError::NoRoom(format!("an ESP needs {fat_size} bytes")))?;
            add.push(NewPartition {
                kind: PartitionType::Esp,
                label: "ESP".into(),
                offset: a * ss,
                size: (b - a + 1) * ss,
                copy_from: None,
            });
            ("esp".to_owned(), false)
        }
    };
    let uki_name = BootEntry::format(&label, opts.tries, None);
    let plan = InstallPlan {
        name: src.name.clone(),
        version: src.version.clone(),
        new_table,
        sector_size: gpt.sector_size,
        add: add.clone(),
        boot_partition: boot_partition.clone(),
        uki: uki_name.clone(),
        reuses_esp,
    };
    if opts.dry_run {
        return Ok(plan);
    }

    // 1. Data into free space nobody references yet.
    let mut buf = vec![0u8; 4 << 20];
    for p in &add {
        match p.copy_from {
            Some(i) => {
                let from = src.gpt.partitions[i].first_lba * ss;
                let mut done = 0;
                while done < p.size {
                    let n = (p.size - done).min(buf.len() as u64) as usize;
                    src.disk.read_at(from + done, &mut buf[..n])?;
                    dst.write_at(p.offset + done, &buf[..n])?;
                    done += n as u64;
                }
            }
            None => {
                let label = if p.kind == PartitionType::Esp {
                    "ESP"
                } else {
                    "XBOOTLDR"
                };
                let fat =
                    crate::esp::build(p.size, gpt.sector_size as u16, rand_volume_id(), label, &[])
                        .map_err(|e| InstallError::Target(e.to_string()))?;
                dst.write_at(p.offset, &fat)?;
            }
        }
    }
    // 2. The partition table, in one crash-safe update.
    for p in &add {
        let (first, last) = (p.offset / ss, (p.offset + p.size) / ss - 1);
        let src_p = p.copy_from.map(|i| src.gpt.partitions[i].clone());
        gpt.partitions.push(GptPartition {
            kind: p.kind,
            uuid: src_p.as_ref().map_or_else(
                || derived_uuid(&format!("{}{first}", gpt.disk_guid), "install"),
                |s| s.uuid,
            ),
            label: p.label.clone(),
            first_lba: first,
            last_lba: last,
            attributes: src_p.map_or(0, |s| s.attributes),
            number: None,
        });
    }
    gpt.validate()
        .map_err(|e| InstallError::Target(e.to_string()))?;
    write_gpt(&mut dst, &gpt)?;
    // 3. systemd-boot and loader.conf on the ESP, keeping what is there.
    let gpt = read_gpt(&dst).map_err(|e| InstallError::Target(e.to_string()))?;
    let esp_at = gpt
        .partitions
        .iter()
        .find(|p| p.kind == PartitionType::Esp)
        .map(|p| EspLocation::of(p, gpt.sector_size));
    let boot_at = esp::boot_partition(&gpt)
        .ok_or_else(|| InstallError::Target("no ESP after install".into()))?;
    if let (Some(at), Some(sd)) = (esp_at, &src.sd_boot) {
        esp::install_file(&mut dst, at, "EFI/systemd", "systemd-bootx64.efi", sd)?;
        // The removable-media path belongs to whoever installed first.
        if esp::read_file(&mut dst, at, "EFI/BOOT/BOOTX64.EFI")?.is_none() {
            esp::install_file(&mut dst, at, "EFI/BOOT", "BOOTX64.EFI", sd)?;
        }
        let existing = esp::read_file(&mut dst, at, "loader/loader.conf")?.unwrap_or_default();
        let merged = esp::merge_loader_conf(&String::from_utf8_lossy(&existing), &opts.loader_conf);
        if merged.as_bytes() != existing.as_slice() {
            esp::install_file(&mut dst, at, "loader", "loader.conf", merged.as_bytes())?;
        }
    }
    // 4. Last, the UKI: from this rename on, systemd-boot offers the new system.
    esp::install_file(&mut dst, boot_at, UKI_DIR, &uki_name, &src.uki)?;
    dst.flush()?;
    Ok(plan)
}

fn rand_volume_id() -> u32 {
    let mut b = [0u8; 4];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    u32::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn an_absurd_size_fits_nowhere() {
        let mut free = vec![(34, 1 << 20)];
        assert_eq!(allocate(&mut free, u64::MAX, 512), None);
        assert_eq!(allocate(&mut free, 0, 512), None);
        assert_eq!(free, [(34, 1 << 20)]);
    }

    #[test]
    fn free_space_is_found_between_and_after_partitions() {
        let gpt = Gpt {
            disk_guid: Uuid::nil(),
            sector_size: 512,
            total_sectors: 100 << 11,
            partitions: vec![GptPartition {
                kind: PartitionType::Esp,
                uuid: Uuid::nil(),
                label: "ESP".into(),
                first_lba: 4 << 11,
                last_lba: (8 << 11) - 1,
                attributes: 0,
                number: None,
            }],
        };
        let mut free = free_extents(&gpt);
        assert_eq!(
            free,
            [(34, (4 << 11) - 1), (8 << 11, gpt.last_usable_lba())]
        );
        // 2 MiB fits before the ESP (from 1 MiB), 3 MiB no longer does.
        assert_eq!(
            allocate(&mut free, 2 << 20, 512),
            Some((1 << 11, (3 << 11) - 1))
        );
        assert_eq!(
            allocate(&mut free, 3 << 20, 512),
            Some((8 << 11, (11 << 11) - 1))
        );
        assert_eq!(allocate(&mut free, 1 << 40, 512), None);
    }
}
