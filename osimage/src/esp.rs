//! The EFI System Partition as a FAT32 file system image, written in-process so the
//! result is reproducible: every timestamp is the DOS epoch and the volume id comes
//! from the build seed.

use std::io::{Cursor, Write};

/// The time every file on a FAT volume we write gets: the DOS epoch, 1980-01-01.
/// (Without one, fatfs stores date 0, whose month and day are 0; UEFI's FAT driver
/// then rejects `SetInfo` on the file, so systemd-boot cannot rename it to count
/// boots: "Invalid Parameter".)
#[derive(Debug)]
pub struct DosEpoch;

impl fatfs::TimeProvider for DosEpoch {
    fn get_current_date(&self) -> fatfs::Date {
        fatfs::Date {
            year: 1980,
            month: 1,
            day: 1,
        }
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        fatfs::DateTime {
            date: self.get_current_date(),
            time: fatfs::Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        }
    }
}

static DOS_EPOCH: DosEpoch = DosEpoch;

/// Options for every FAT file system osimage opens for writing.
pub fn fs_options() -> fatfs::FsOptions {
    fatfs::FsOptions::new()
        .time_provider(&DOS_EPOCH)
        .update_accessed_date(false)
}

/// FAT32 needs at least 65525 clusters; with the smallest cluster (one sector) plus
/// the FATs and reserved sectors, this is the smallest ESP that can be FAT32.
pub fn fat32_min_size(sector_size: u16) -> u64 {
    let clusters = 65_525u64 + 1024;
    let data = clusters * sector_size as u64;
    // Two FATs of 4 bytes per cluster, and reserved sectors.
    let overhead = 2 * clusters * 4 + 64 * sector_size as u64;
    (data + overhead).div_ceil(1 << 20) << 20
}

#[derive(Debug, thiserror::Error)]
pub enum EspError {
    #[error(
        "an ESP of {size} bytes cannot be FAT32 with {sector_size}-byte sectors; it needs at least {min} bytes"
    )]
    TooSmallForFat32 {
        size: u64,
        sector_size: u16,
        min: u64,
    },
    #[error("ESP of {size} bytes is too small for its {needed} bytes of files")]
    TooSmall { size: u64, needed: u64 },
    #[error("writing {path} into the ESP: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("formatting the ESP: {0}")]
    Format(std::io::Error),
}

/// Builds a FAT image of `size` bytes holding `files` (paths with `/`, parents made
/// as needed). `sector_size` is the disk's logical sector size.
pub fn build(
    size: u64,
    sector_size: u16,
    volume_id: u32,
    label: &str,
    files: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, EspError> {
    let min = fat32_min_size(sector_size);
    if size < min {
        return Err(EspError::TooSmallForFat32 {
            size,
            sector_size,
            min,
        });
    }
    let needed: u64 = files.iter().map(|(_, d)| d.len() as u64 + 4096).sum();
    if needed + (2 << 20) > size {
        return Err(EspError::TooSmall { size, needed });
    }
    let mut disk = Cursor::new(vec![0u8; size as usize]);
    let mut vol_label = [b' '; 11];
    for (d, s) in vol_label.iter_mut().zip(label.to_ascii_uppercase().bytes()) {
        *d = s;
    }
    fatfs::format_volume(
        &mut disk,
        fatfs::FormatVolumeOptions::new()
            .bytes_per_sector(sector_size)
            .bytes_per_cluster(sector_size as u32)
            .fat_type(fatfs::FatType::Fat32)
            .volume_id(volume_id)
            .volume_label(vol_label),
    )
    .map_err(EspError::Format)?;
    {
        let fs = fatfs::FileSystem::new(&mut disk, fs_options()).map_err(EspError::Format)?;
        write_files(&fs, files)?;
        fs.unmount().map_err(EspError::Format)?;
    }
    Ok(disk.into_inner())
}

fn write_files<T: fatfs::ReadWriteSeek>(
    fs: &fatfs::FileSystem<T>,
    files: &[(String, Vec<u8>)],
) -> Result<(), EspError> {
    {
        let root = fs.root_dir();
        let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, data) in sorted {
            let err = |source| EspError::Write {
                path: path.clone(),
                source,
            };
            let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            let mut dir = root.clone();
            for part in &parts[..parts.len().saturating_sub(1)] {
                dir = match dir.open_dir(part) {
                    Ok(d) => d,
                    Err(_) => dir.create_dir(part).map_err(err)?,
                };
            }
            let name = parts.last().copied().unwrap_or_default();
            let mut f = dir.create_file(name).map_err(err)?;
            f.truncate().map_err(err)?;
            f.write_all(data).map_err(err)?;
            f.flush().map_err(err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn files_round_trip_and_builds_are_identical() {
        let files = vec![
            ("EFI/BOOT/BOOTX64.EFI".to_owned(), vec![1u8; 5000]),
            ("loader/loader.conf".to_owned(), b"timeout 0\n".to_vec()),
        ];
        let a = build(40 << 20, 512, 0x1234_5678, "ESP", &files).unwrap();
        let b = build(40 << 20, 512, 0x1234_5678, "ESP", &files).unwrap();
        assert!(a == b, "two builds differ");
        let fs = fatfs::FileSystem::new(Cursor::new(a), fatfs::FsOptions::new()).unwrap();
        let mut s = String::new();
        fs.root_dir()
            .open_file("loader/loader.conf")
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "timeout 0\n");
        assert_eq!(fs.volume_id(), 0x1234_5678);
        assert_eq!(fs.fat_type(), fatfs::FatType::Fat32);
    }

    #[test]
    fn too_small_is_an_error() {
        let files = vec![("big".to_owned(), vec![0u8; 40 << 20])];
        assert!(matches!(
            build(40 << 20, 512, 1, "ESP", &files),
            Err(EspError::TooSmall { .. })
        ));
        assert!(matches!(
            build(8 << 20, 512, 1, "ESP", &[]),
            Err(EspError::TooSmallForFat32 { .. })
        ));
        assert_eq!(fat32_min_size(512), 34 << 20);
        assert!(fat32_min_size(4096) > 256 << 20);
    }
}
