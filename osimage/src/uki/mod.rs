//! Unified kernel images (Boot Loader Specification type #2): systemd's EFI stub with
//! the kernel, initrd, command line, os-release and PCR policy data as PE sections.

pub mod pe;

use std::path::{Path, PathBuf};

pub use pe::PeError;

#[derive(Debug, thiserror::Error)]
pub enum UkiError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Stub {
        path: PathBuf,
        #[source]
        source: PeError,
    },
    #[error(transparent)]
    Pe(#[from] PeError),
}

/// What goes into a UKI. Byte contents, so building is pure and testable.
#[derive(Debug, Clone, Default)]
pub struct UkiSpec {
    pub osrel: Vec<u8>,
    pub cmdline: String,
    pub uname: Option<String>,
    pub splash: Option<Vec<u8>>,
    /// PEM public key the PCR 11 policy is signed with.
    pub pcrpkey: Option<Vec<u8>>,
    /// The signed policy JSON.
    pub pcrsig: Option<Vec<u8>>,
    pub initrd: Vec<u8>,
    pub linux: Vec<u8>,
}

/// The order sections are laid out in. `.linux` goes last so the kernel image is at
/// the end of the loaded image, where it has room to decompress.
pub const SECTION_ORDER: [&str; 8] = [
    ".osrel", ".cmdline", ".uname", ".splash", ".pcrpkey", ".pcrsig", ".initrd", ".linux",
];

impl UkiSpec {
    /// The sections in layout order, skipping absent ones.
    pub fn sections(&self) -> Vec<(&'static str, Vec<u8>)> {
        // No trailing NUL: the stub copies the section by its size, and ukify and
        // systemd-measure both take the command line as plain text, so the PCR 11
        // prediction for the same text matches theirs.
        let cmdline = self.cmdline.clone().into_bytes();
        let all: [(&str, Option<Vec<u8>>); 8] = [
            (".osrel", Some(self.osrel.clone())),
            (".cmdline", Some(cmdline)),
            (
                ".uname",
                self.uname.as_ref().map(|u| u.clone().into_bytes()),
            ),
            (".splash", self.splash.clone()),
            (".pcrpkey", self.pcrpkey.clone()),
            (".pcrsig", self.pcrsig.clone()),
            (".initrd", Some(self.initrd.clone())),
            (".linux", Some(self.linux.clone())),
        ];
        all.into_iter()
            .filter_map(|(n, d)| d.map(|d| (n, d)))
            .collect()
    }

    /// Builds the UKI from the stub's bytes.
    pub fn build(&self, stub: &[u8]) -> Result<Vec<u8>, PeError> {
        let sections = self.sections();
        let refs: Vec<(&str, &[u8])> = sections.iter().map(|(n, d)| (*n, d.as_slice())).collect();
        pe::append_sections(stub, &refs)
    }

    /// Builds from a stub file, naming it in errors.
    pub fn build_from_file(&self, stub: &Path) -> Result<Vec<u8>, UkiError> {
        let bytes = std::fs::read(stub).map_err(|source| UkiError::Read {
            path: stub.to_owned(),
            source,
        })?;
        self.build(&bytes).map_err(|source| UkiError::Stub {
            path: stub.to_owned(),
            source,
        })
    }
}

/// Reads the kernel release from a bzImage's setup header (the version string the
/// kernel points at), for `.uname` when none is given.
pub fn kernel_release(bzimage: &[u8]) -> Option<String> {
    if bzimage.len() < 0x210 || &bzimage[0x202..0x206] != b"HdrS" {
        return None;
    }
    let off = u16::from_le_bytes([bzimage[0x20e], bzimage[0x20f]]) as usize + 0x200;
    let s = bzimage.get(off..)?;
    let end = s.iter().position(|&c| c == 0 || c == b' ')?;
    std::str::from_utf8(&s[..end]).ok().map(str::to_owned)
}
