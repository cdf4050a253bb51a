//! The disk this machine booted from, as systemd-boot reports it: the EFI variable
//! `LoaderDevicePartUUID` names the partition the loader was read from (the ESP),
//! and the disk holding that partition is the boot disk.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::efivars::LOADER_VENDOR;

pub const LOADER_DEVICE_PART_UUID: &str = "LoaderDevicePartUUID";

/// How long udev gets to make the /dev/disk/by-partuuid link, when firstboot runs
/// while the disk is still being probed.
const LINK_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BootDiskError {
    #[error(
        "the EFI variable {LOADER_DEVICE_PART_UUID}-{LOADER_VENDOR} is not set (in {}): the \
         boot loader did not say which disk it started from (not systemd-boot, or not booted \
         with UEFI); give the disk with --disk DEVICE",
        dir.display()
    )]
    NoVariable { dir: PathBuf },
    #[error("{}: {why}", path.display())]
    Bad { path: PathBuf, why: String },
}

/// The partition UUID in an efivarfs file of `LoaderDevicePartUUID`: 4 bytes of
/// attributes, then a NUL-terminated UTF-16LE GUID (systemd-boot writes it in
/// upper case).
pub fn decode_part_uuid(file: &[u8]) -> Result<Uuid, String> {
    let value = file.get(4..).ok_or("shorter than its 4 attribute bytes")?;
    if value.len() % 2 != 0 {
        return Err(format!("{} bytes is not UTF-16", value.len()));
    }
    let units: Vec<u16> = value
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    let text = String::from_utf16(&units).map_err(|_| "not valid UTF-16".to_string())?;
    Uuid::parse_str(&text).map_err(|_| format!("`{text}` is not a GUID"))
}

/// Finds the boot disk: the variable under `efivars`, the partition's link under
/// `dev`/disk/by-partuuid, and the disk that partition belongs to in `sys_block`
/// (/sys/class/block). Returns `dev`/<disk>.
pub fn boot_disk(efivars: &Path, dev: &Path, sys_block: &Path) -> Result<PathBuf, BootDiskError> {
    let var = efivars.join(format!("{LOADER_DEVICE_PART_UUID}-{LOADER_VENDOR}"));
    let file = match std::fs::read(&var) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BootDiskError::NoVariable {
                dir: efivars.to_owned(),
            });
        }
        Err(e) => {
            return Err(BootDiskError::Bad {
                path: var,
                why: e.to_string(),
            });
        }
    };
    let uuid = decode_part_uuid(&file).map_err(|why| BootDiskError::Bad {
        path: var.clone(),
        why,
    })?;
    let link = dev
        .join("disk/by-partuuid")
        .join(uuid.hyphenated().to_string());
    let deadline = Instant::now() + LINK_WAIT;
    let part = loop {
        match std::fs::canonicalize(&link) {
            Ok(p) => break p,
            Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(BootDiskError::Bad {
                    path: link,
                    why: format!(
                        "{e}: no partition with the UUID the boot loader gave ({uuid}) appeared \
                         within {} s",
                        LINK_WAIT.as_secs()
                    ),
                });
            }
        }
    };
    let name = part.file_name().unwrap_or_default();
    let sys = sys_block.join(name);
    let bad = |why: String| BootDiskError::Bad {
        path: sys.clone(),
        why,
    };
    if !sys.join("partition").exists() {
        return Err(bad(format!(
            "{} (from {}) is not a partition",
            part.display(),
            link.display()
        )));
    }
    let disk = std::fs::canonicalize(sys.join("..")).map_err(|e| bad(e.to_string()))?;
    let disk = disk
        .file_name()
        .ok_or_else(|| bad("the partition has no parent disk".into()))?;
    Ok(dev.join(disk))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An efivarfs file as systemd-boot leaves it (attributes 0x6: boot service and
    /// runtime access, volatile), as `xxd` shows it.
    const VARIABLE: &str = "06000000350044003600450031004100\
                            460045002d0034004600300043002d00\
                            34004600340045002d00390046003600\
                            42002d00300042003100440032004100\
                            3600430038004500330031000000";

    fn variable() -> Vec<u8> {
        hex::decode(VARIABLE).unwrap()
    }

    #[test]
    fn the_variable_decodes_to_the_partition_uuid() {
        let uuid = decode_part_uuid(&variable()).unwrap();
        assert_eq!(
            uuid.hyphenated().to_string(),
            "5d6e1afe-4f0c-4f4e-9f6b-0b1d2a6c8e31"
        );
        assert!(decode_part_uuid(&[6, 0, 0]).is_err());
        assert!(decode_part_uuid(&[6, 0, 0, 0, b'5', 0, b'D']).is_err());
        let mut text = vec![6, 0, 0, 0];
        text.extend(super::super::efivars::encode_utf16("not-a-guid"));
        let e = decode_part_uuid(&text).unwrap_err();
        assert!(e.contains("`not-a-guid` is not a GUID"), "{e}");
    }

    #[test]
    fn the_boot_disk_is_the_parent_of_the_loader_partition() {
        use std::os::unix::fs::symlink;
        let t = tempfile::tempdir().unwrap();
        let (efivars, dev, sys) = (
            t.path().join("efivars"),
            t.path().join("dev"),
            t.path().join("sys"),
        );
        let e = boot_disk(&efivars, &dev, &sys.join("class/block")).unwrap_err();
        assert!(
            e.to_string()
                .contains("LoaderDevicePartUUID-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f is not set"),
            "{e}"
        );
        std::fs::create_dir_all(&efivars).unwrap();
        std::fs::write(
            efivars.join(format!("{LOADER_DEVICE_PART_UUID}-{LOADER_VENDOR}")),
            variable(),
        )
        .unwrap();
        std::fs::create_dir_all(dev.join("disk/by-partuuid")).unwrap();
        std::fs::write(dev.join("nvme0n1p1"), "").unwrap();
        symlink(
            "../../nvme0n1p1",
            dev.join("disk/by-partuuid/5d6e1afe-4f0c-4f4e-9f6b-0b1d2a6c8e31"),
        )
        .unwrap();
        let part = sys.join("devices/pci0000:00/nvme/nvme0/nvme0n1/nvme0n1p1");
        std::fs::create_dir_all(&part).unwrap();
        std::fs::write(part.join("partition"), "1\n").unwrap();
        std::fs::create_dir_all(sys.join("class/block")).unwrap();
        symlink(
            "../../devices/pci0000:00/nvme/nvme0/nvme0n1/nvme0n1p1",
            sys.join("class/block/nvme0n1p1"),
        )
        .unwrap();
        assert_eq!(
            boot_disk(&efivars, &dev, &sys.join("class/block")).unwrap(),
            dev.join("nvme0n1")
        );
    }
}
