//! LUKS2 volumes: reading their tokens and checking or using a key, through
//! libcryptsetup (the library cryptsetup and systemd-cryptsetup use).

pub mod enroll;
pub mod format;
pub mod header;
pub mod token;
pub mod unlock;

use std::path::{Path, PathBuf};

use libcryptsetup_rs::consts::flags::{CryptActivate, CryptDeactivate};
use libcryptsetup_rs::consts::vals::{CryptStatusInfo, EncryptionFormat};
use libcryptsetup_rs::{CryptDevice, CryptInit, LibcryptErr};

pub use token::{PcrSigningKey, SystemdTpm2Token};

/// LUKS2 allows 32 tokens.
const MAX_TOKENS: u32 = 32;

#[derive(Debug, thiserror::Error)]
pub enum LuksError {
    #[error("{path}: not a readable LUKS2 volume (missing, or its header is corrupt): {detail}")]
    NotLuks { path: PathBuf, detail: String },
    #[error("bad systemd-tpm2 token: {0}")]
    BadToken(String),
    #[error("{path}: no systemd-tpm2 token")]
    NoToken { path: PathBuf },
    #[error("{path}: the key does not open keyslot {keyslot}")]
    WrongKey { path: PathBuf, keyslot: String },
    #[error("{path}: {what}: {detail}")]
    Library {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
}

/// An opened LUKS2 header.
pub struct Luks2 {
    path: PathBuf,
    pub(super) device: CryptDevice,
}

impl std::fmt::Debug for Luks2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Luks2").field("path", &self.path).finish()
    }
}

impl Luks2 {
    pub fn open(path: &Path) -> Result<Luks2, LuksError> {
        let not_luks = |e: LibcryptErr| LuksError::NotLuks {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        let mut device = CryptInit::init(path).map_err(not_luks)?;
        device
            .context_handle()
            .load::<()>(Some(EncryptionFormat::Luks2), None)
            .map_err(not_luks)?;
        Ok(Luks2 {
            path: path.to_path_buf(),
            device,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every token's JSON, by id.
    pub fn tokens(&mut self) -> Vec<(u32, serde_json::Value)> {
        (0..MAX_TOKENS)
            .filter_map(|id| {
                self.device
                    .token_handle()
                    .json_get(id)
                    .ok()
                    .map(|json| (id, json))
            })
            .collect()
    }

    /// The systemd-tpm2 tokens, parsed; tokens of that type that do not parse are
    /// reported, not skipped.
    pub fn tpm2_tokens(&mut self) -> Result<Vec<(u32, SystemdTpm2Token)>, LuksError> {
        let mut out = Vec::new();
        for (id, json) in self.tokens() {
            if json.get("type").and_then(|t| t.as_str()) == Some(token::TOKEN_TYPE) {
                let t = SystemdTpm2Token::from_json(&json)
                    .map_err(|e| LuksError::BadToken(format!("token {id}: {e}")))?;
                out.push((id, t));
            }
        }
        if out.is_empty() {
            return Err(LuksError::NoToken {
                path: self.path.clone(),
            });
        }
        Ok(out)
    }

    /// Checks `passphrase` against `keyslot` (or any) without activating anything:
    /// no device-mapper needed. Returns the keyslot it opened.
    pub fn check(&mut self, keyslot: Option<u32>, passphrase: &[u8]) -> Result<u32, LuksError> {
        self.device
            .activate_handle()
            .activate_by_passphrase(None, keyslot, passphrase, CryptActivate::empty())
            .map_err(|_| LuksError::WrongKey {
                path: self.path.clone(),
                keyslot: keyslot.map_or_else(|| "any".into(), |k| k.to_string()),
            })
    }

    /// Opens the volume as `/dev/mapper/<name>` (needs device-mapper).
    pub fn activate(
        &mut self,
        name: &str,
        keyslot: Option<u32>,
        passphrase: &[u8],
    ) -> Result<u32, LuksError> {
        self.device
            .activate_handle()
            .activate_by_passphrase(Some(name), keyslot, passphrase, CryptActivate::empty())
            .map_err(|e| LuksError::Library {
                path: self.path.clone(),
                what: "activate",
                detail: e.to_string(),
            })
    }

    /// Opens the volume as `/dev/mapper/<name>` with its volume key (needs
    /// device-mapper): for a volume just made, before any passphrase is needed.
    /// `initializing` is for the one pass that initializes a new integrity-protected
    /// volume's tags: dm-integrity's journal is skipped (a crash re-creates the
    /// volume anyway), and the device is private, so udev's probes do not read
    /// sectors whose tags are not written yet (each such read is a kernel error).
    pub fn activate_by_volume_key(
        &mut self,
        name: &str,
        volume_key: &[u8],
        initializing: bool,
    ) -> Result<(), LuksError> {
        let flags = if initializing {
            CryptActivate::NO_JOURNAL | CryptActivate::PRIVATE
        } else {
            CryptActivate::empty()
        };
        self.device
            .activate_handle()
            .activate_by_volume_key(Some(name), Some(volume_key), flags)
            .map_err(|e| LuksError::Library {
                path: self.path.clone(),
                what: "activate by volume key",
                detail: e.to_string(),
            })
    }

    /// Closes `/dev/mapper/<name>`.
    pub fn deactivate(&mut self, name: &str) -> Result<(), LuksError> {
        deactivate_with(&mut self.device, name).map_err(|e| LuksError::Library {
            path: self.path.clone(),
            what: "deactivate",
            detail: e.to_string(),
        })
    }
}

/// udev may still be probing a device that was just written to, and holds it open
/// for that moment: closing is retried for a few seconds.
fn deactivate_with(device: &mut CryptDevice, name: &str) -> Result<(), LibcryptErr> {
    let mut tries = 0;
    loop {
        match device
            .activate_handle()
            .deactivate(name, CryptDeactivate::empty())
        {
            Err(LibcryptErr::IOError(e)) if e.raw_os_error() == Some(libc::EBUSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            r => return r,
        }
    }
}

/// Closes the device-mapper device `name` if one is active: returns whether there
/// was one.
pub fn deactivate_stale(name: &str) -> Result<bool, LuksError> {
    let lib = |what, e: LibcryptErr| LuksError::Library {
        path: PathBuf::from("/dev/mapper").join(name),
        what,
        detail: e.to_string(),
    };
    match libcryptsetup_rs::status(None, name) {
        Ok(CryptStatusInfo::Active | CryptStatusInfo::Busy) => {}
        _ => return Ok(false),
    }
    tracing::warn!("/dev/mapper/{name} is still active (an interrupted run?): closing it");
    let mut device =
        CryptInit::init_by_name_and_header(name, None).map_err(|e| lib("crypt_init_by_name", e))?;
    deactivate_with(&mut device, name).map_err(|e| lib("deactivate", e))?;
    Ok(true)
}
