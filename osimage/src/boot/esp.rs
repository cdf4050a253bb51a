//! Files on the ESP (or XBOOTLDR) of a disk, through the [`Disk`] trait so crash tests
//! see every write.
//!
//! A UKI is written under a hidden temporary name and renamed into place: the rename
//! is the activation point. fatfs renames by deleting the old directory entry and
//! then writing the new one, so a crash in between leaves neither name (some leaked
//! clusters, never a half-written `.efi` that systemd-boot would pick).

use std::io::{self, Read, Write};

use crate::boot::BootEntry;
use crate::disk::{Disk, Region};
use crate::gpt::GptPartition;

pub const UKI_DIR: &str = "EFI/Linux";

#[derive(Debug, Clone, Copy)]
pub struct EspLocation {
    pub offset: u64,
    pub size: u64,
}

impl EspLocation {
    pub fn of(p: &GptPartition, sector_size: u32) -> EspLocation {
        EspLocation {
            offset: p.first_lba * sector_size as u64,
            size: p.sectors() * sector_size as u64,
        }
    }
}

/// Where UKIs live on a disk: XBOOTLDR when there is one, else the ESP (the Boot
/// Loader Specification's rule).
pub fn boot_partition(gpt: &crate::gpt::Gpt) -> Option<EspLocation> {
    use crate::gpt::PartitionType;
    gpt.partitions
        .iter()
        .find(|p| p.kind == PartitionType::Xbootldr)
        .or_else(|| gpt.partitions.iter().find(|p| p.kind == PartitionType::Esp))
        .map(|p| EspLocation::of(p, gpt.sector_size))
}

fn with_fs<R>(
    disk: &mut dyn Disk,
    at: EspLocation,
    f: impl FnOnce(&fatfs::FileSystem<Region<'_>>) -> io::Result<R>,
) -> io::Result<R> {
    let region = Region::new(disk, at.offset, at.size);
    let fs = fatfs::FileSystem::new(region, crate::esp::fs_options())?;
    let r = f(&fs)?;
    fs.unmount()?;
    Ok(r)
}

fn open_dir<'a, 'b>(
    fs: &'b fatfs::FileSystem<Region<'a>>,
    path: &str,
    create: bool,
) -> io::Result<fatfs::Dir<'b, Region<'a>>> {
    let mut dir = fs.root_dir();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        dir = match dir.open_dir(part) {
            Ok(d) => d,
            Err(_) if create => dir.create_dir(part)?,
            Err(e) => return Err(e),
        };
    }
    Ok(dir)
}

/// The UKIs in `EFI/Linux`, read without writing anything (a FAT mount by fatfs
/// writes its dirty flag, which a read-only check must not do).
pub fn entries_readonly(disk: &dyn Disk, at: EspLocation) -> io::Result<Vec<BootEntry>> {
    let mut copy = crate::disk::ReadOnly(disk);
    entries(&mut copy, at)
}

/// File names in a directory (empty if it does not exist).
pub fn list(disk: &mut dyn Disk, at: EspLocation, dir: &str) -> io::Result<Vec<String>> {
    with_fs(disk, at, |fs| {
        let Ok(d) = open_dir(fs, dir, false) else {
            return Ok(Vec::new());
        };
        let mut names = Vec::new();
        for e in d.iter() {
            let e = e?;
            if e.is_file() {
                names.push(e.file_name());
            }
        }
        names.sort();
        Ok(names)
    })
}

/// The UKIs in `EFI/Linux`.
pub fn entries(disk: &mut dyn Disk, at: EspLocation) -> io::Result<Vec<BootEntry>> {
    Ok(list(disk, at, UKI_DIR)?
        .iter()
        .filter_map(|n| BootEntry::parse(n))
        .collect())
}

pub fn read_file(disk: &mut dyn Disk, at: EspLocation, path: &str) -> io::Result<Option<Vec<u8>>> {
    with_fs(disk, at, |fs| match fs.root_dir().open_file(path) {
        Ok(mut f) => {
            let mut v = Vec::new();
            f.read_to_end(&mut v)?;
            Ok(Some(v))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    })
}

/// Free bytes on the file system.
pub fn free_bytes(disk: &mut dyn Disk, at: EspLocation) -> io::Result<u64> {
    with_fs(disk, at, |fs| {
        let s = fs.stats()?;
        Ok(s.free_clusters() as u64 * s.cluster_size() as u64)
    })
}

/// Writes `data` to `dir/name` through a temporary name and a rename; replaces an
/// existing file of that name (removed just before the rename).
pub fn install_file(
    disk: &mut dyn Disk,
    at: EspLocation,
    dir: &str,
    name: &str,
    data: &[u8],
) -> io::Result<()> {
    let tmp = format!(".{name}.tmp");
    with_fs(disk, at, |fs| {
        let d = open_dir(fs, dir, true)?;
        // A stale temporary from an interrupted run: its clusters are its own.
        let _ = d.remove(&tmp);
        {
            let mut f = d.create_file(&tmp)?;
            f.truncate()?;
            f.write_all(data)?;
            f.flush()?;
        }
        if d.open_file(name).is_ok() {
            d.remove(name)?;
        }
        d.rename(&tmp, &d, name)
    })
}

/// Renames a file in `dir` (bless, mark bad, vacuum staging).
pub fn rename(
    disk: &mut dyn Disk,
    at: EspLocation,
    dir: &str,
    from: &str,
    to: &str,
) -> io::Result<()> {
    with_fs(disk, at, |fs| {
        let d = open_dir(fs, dir, false)?;
        d.rename(from, &d, to)
    })
}

/// Removes a file: first renamed out of systemd-boot's sight, then deleted, so a
/// crash never leaves a selectable entry whose clusters are already free.
pub fn remove(disk: &mut dyn Disk, at: EspLocation, dir: &str, name: &str) -> io::Result<()> {
    let hidden = format!(".{name}.del");
    with_fs(disk, at, |fs| {
        let d = open_dir(fs, dir, false)?;
        let _ = d.remove(&hidden);
        d.rename(name, &d, &hidden)?;
        d.remove(&hidden)
    })
}

/// Deletes leftovers of interrupted operations (`.*.tmp`, `.*.del`).
pub fn clean_stale(disk: &mut dyn Disk, at: EspLocation, dir: &str) -> io::Result<Vec<String>> {
    let stale: Vec<String> = list(disk, at, dir)?
        .into_iter()
        .filter(|n| n.starts_with('.') && (n.ends_with(".tmp") || n.ends_with(".del")))
        .collect();
    if !stale.is_empty() {
        with_fs(disk, at, |fs| {
            let d = open_dir(fs, dir, false)?;
            for n in &stale {
                d.remove(n)?;
            }
            Ok(())
        })?;
    }
    Ok(stale)
}

/// Merges `wanted` settings into an existing loader.conf: keys the user set are kept,
/// missing keys are appended. Pure, so it is tested without a disk.
pub fn merge_loader_conf(existing: &str, wanted: &str) -> String {
    let key = |l: &str| l.split_whitespace().next().map(str::to_owned);
    let have: Vec<String> = existing
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(key)
        .collect();
    let mut out = existing.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for line in wanted.lines() {
        if let Some(k) = key(line)
            && !line.trim_start().starts_with('#')
            && !have.contains(&k)
        {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_conf_keeps_the_users_settings() {
        let merged = merge_loader_conf(
            "timeout 10\n# editor yes\nconsole-mode max\n",
            "timeout 3\neditor no\n",
        );
        assert_eq!(
            merged,
            "timeout 10\n# editor yes\nconsole-mode max\neditor no\n"
        );
        assert_eq!(merge_loader_conf("", "timeout 3\n"), "timeout 3\n");
    }

    #[test]
    fn files_install_rename_and_remove_on_a_fat_image() {
        let files = vec![("EFI/BOOT/BOOTX64.EFI".to_owned(), vec![1u8; 3000])];
        let img = crate::esp::build(40 << 20, 512, 1, "ESP", &files).unwrap();
        let mut disk = crate::disk::MemDisk(img);
        let at = EspLocation {
            offset: 0,
            size: 40 << 20,
        };
        install_file(&mut disk, at, UKI_DIR, "tessera_2+3.efi", &[7u8; 10_000]).unwrap();
        install_file(&mut disk, at, UKI_DIR, "tessera_1.efi", &[6u8; 5000]).unwrap();
        let ids: Vec<String> = entries(&mut disk, at)
            .unwrap()
            .into_iter()
            .map(|e| e.file_name)
            .collect();
        assert_eq!(ids, ["tessera_1.efi", "tessera_2+3.efi"]);
        rename(&mut disk, at, UKI_DIR, "tessera_2+3.efi", "tessera_2.efi").unwrap();
        remove(&mut disk, at, UKI_DIR, "tessera_1.efi").unwrap();
        assert_eq!(list(&mut disk, at, UKI_DIR).unwrap(), ["tessera_2.efi"]);
        assert_eq!(
            read_file(&mut disk, at, "EFI/Linux/tessera_2.efi")
                .unwrap()
                .unwrap(),
            vec![7u8; 10_000]
        );
        // Replacing keeps one file.
        install_file(&mut disk, at, "loader", "loader.conf", b"timeout 1\n").unwrap();
        install_file(&mut disk, at, "loader", "loader.conf", b"timeout 2\n").unwrap();
        assert_eq!(
            read_file(&mut disk, at, "loader/loader.conf")
                .unwrap()
                .unwrap(),
            b"timeout 2\n"
        );
    }
}
