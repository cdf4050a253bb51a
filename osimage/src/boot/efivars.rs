//! EFI variables through efivarfs: systemd-boot's loader interface
//! (LoaderEntrySelected, LoaderEntryDefault, LoaderEntryOneShot) and, for factory
//! reset, `FactoryReset`.

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// systemd-boot's vendor GUID for the loader interface.
pub const LOADER_VENDOR: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// EFI_VARIABLE_NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS
pub const ATTR_NV_BS_RT: u32 = 0x7;
/// EFI_VARIABLE_BOOTSERVICE_ACCESS | RUNTIME_ACCESS (volatile)
pub const ATTR_BS_RT: u32 = 0x6;

pub const DEFAULT_ROOT: &str = "/sys/firmware/efi/efivars";

/// An efivarfs mount (or a directory standing in for one in tests).
#[derive(Debug, Clone)]
pub struct EfiVars {
    root: PathBuf,
}

impl EfiVars {
    pub fn new(root: &Path) -> EfiVars {
        EfiVars {
            root: root.to_owned(),
        }
    }

    /// The system's efivarfs, or `$OSIMAGE_EFIVARFS` when set.
    pub fn system() -> Option<EfiVars> {
        let root = std::env::var_os("OSIMAGE_EFIVARFS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
        root.is_dir().then_some(EfiVars { root })
    }

    /// `dir` when given (and a directory), else the system's efivarfs.
    pub fn at_or_system(dir: Option<&Path>) -> Option<EfiVars> {
        match dir {
            Some(d) => d.is_dir().then(|| EfiVars::new(d)),
            None => EfiVars::system(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str, vendor: &str) -> PathBuf {
        self.root.join(format!("{name}-{vendor}"))
    }

    /// The raw value, without the attribute prefix.
    pub fn get(&self, name: &str, vendor: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(name, vendor)) {
            Ok(b) if b.len() >= 4 => Ok(Some(b[4..].to_vec())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A UTF-16LE string variable (as systemd-boot writes them).
    pub fn get_string(&self, name: &str, vendor: &str) -> io::Result<Option<String>> {
        Ok(self.get(name, vendor)?.map(|b| decode_utf16(&b)))
    }

    pub fn set(&self, name: &str, vendor: &str, attributes: u32, data: &[u8]) -> io::Result<()> {
        let path = self.path(name, vendor);
        make_mutable(&path);
        let mut bytes = attributes.to_le_bytes().to_vec();
        bytes.extend_from_slice(data);
        // efivarfs wants the whole variable in a single write.
        std::fs::write(&path, bytes)
    }

    pub fn set_string(
        &self,
        name: &str,
        vendor: &str,
        attributes: u32,
        value: &str,
    ) -> io::Result<()> {
        self.set(name, vendor, attributes, &encode_utf16(value))
    }

    pub fn delete(&self, name: &str, vendor: &str) -> io::Result<()> {
        let path = self.path(name, vendor);
        make_mutable(&path);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }
}

/// NUL-terminated UTF-16LE.
pub fn encode_utf16(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

pub fn decode_utf16(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// efivarfs marks variables immutable; writing or deleting needs the flag off. A
/// plain directory (tests) has no such flag, and the ioctl failing is harmless.
fn make_mutable(path: &Path) {
    const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
    const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;
    const FS_IMMUTABLE_FL: libc::c_long = 0x10;
    let Ok(f) = std::fs::File::open(path) else {
        return;
    };
    let mut flags: libc::c_long = 0;
    // SAFETY: ioctls on an fd we own, with a pointer to a local of the size the
    // kernel expects for these requests.
    unsafe {
        if libc::ioctl(f.as_raw_fd(), FS_IOC_GETFLAGS, &mut flags) == 0
            && flags & FS_IMMUTABLE_FL != 0
        {
            flags &= !FS_IMMUTABLE_FL;
            libc::ioctl(f.as_raw_fd(), FS_IOC_SETFLAGS, &flags);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_variables_round_trip_in_efivarfs_format() {
        let d = tempfile::tempdir().unwrap();
        let v = EfiVars::new(d.path());
        v.set_string(
            "LoaderEntryDefault",
            LOADER_VENDOR,
            ATTR_NV_BS_RT,
            "tessera_2.efi",
        )
        .unwrap();
        let raw =
            std::fs::read(d.path().join(format!("LoaderEntryDefault-{LOADER_VENDOR}"))).unwrap();
        assert_eq!(&raw[..4], &[7, 0, 0, 0]);
        assert_eq!(&raw[4..8], &[b't', 0, b'e', 0]);
        assert_eq!(
            v.get_string("LoaderEntryDefault", LOADER_VENDOR)
                .unwrap()
                .unwrap(),
            "tessera_2.efi"
        );
        v.delete("LoaderEntryDefault", LOADER_VENDOR).unwrap();
        assert_eq!(
            v.get_string("LoaderEntryDefault", LOADER_VENDOR).unwrap(),
            None
        );
    }
}
