//! Enrolling a LUKS2 volume: a `systemd-tpm2` token that systemd-cryptsetup reads
//! unchanged, and a recovery key in systemd's format.

use libcryptsetup_rs::consts::vals::CryptKdf;
use libcryptsetup_rs::{CryptPbkdfType, TokenInput};

use super::token::{PcrSigningKey, SystemdTpm2Token, TOKEN_TYPE, encode_blob};
use super::unlock::passphrase;
use super::{Luks2, LuksError};
use crate::tpm2::{self, PcrSelection, Tpm, Tpm2Error, policy};

/// What opens the volume while a keyslot is added: a passphrase of an existing
/// keyslot, or, right after formatting (before any keyslot exists), the volume key.
#[derive(Clone, Copy)]
pub enum Existing<'a> {
    Passphrase(&'a [u8]),
    VolumeKey(&'a [u8]),
}

impl std::fmt::Debug for Existing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Existing::Passphrase(_) => "Existing::Passphrase(..)",
            Existing::VolumeKey(_) => "Existing::VolumeKey(..)",
        })
    }
}

/// What a TPM2 token binds to.
#[derive(Debug, Clone, Default)]
pub struct Tpm2Binding {
    /// PCRs bound by their current values (typically 7: Secure Boot state).
    pub pcrs: Vec<u32>,
    /// The PCR signing key (PEM) and the PCRs it vouches for (typically 11).
    pub signed: Option<(String, Vec<u32>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(transparent)]
    Luks(#[from] LuksError),
    #[error(transparent)]
    Tpm(#[from] Tpm2Error),
    #[error("PCR signing key: {0}")]
    Key(String),
}

/// `n` bytes from the OS RNG mixed (XOR) with the TPM's: neither source alone
/// decides the result.
pub fn mixed_random(tpm: &mut Tpm, n: usize) -> Result<Vec<u8>, Tpm2Error> {
    let mut out = tpm2::crypto::random(n)?;
    for (o, t) in out.iter_mut().zip(tpm.get_random(n)?) {
        *o ^= t;
    }
    Ok(out)
}

/// The policy digest systemd computes for a binding: PolicyAuthorize with the signing
/// key first (when there is one), then PolicyPCR over `values` of `binding.pcrs`.
pub fn binding_policy(
    signing_key: Option<&PcrSigningKey>,
    selection: &PcrSelection,
    values: &[[u8; 32]],
) -> [u8; 32] {
    let mut digest = [0u8; 32];
    if let Some(key) = signing_key {
        digest = policy::policy_authorize(&key.name(), b"");
    }
    if !selection.is_empty() {
        digest = policy::policy_pcr(&digest, selection, values);
    }
    digest
}

/// Seals a fresh secret to `binding`, adds a keyslot whose passphrase is its base64
/// (unlocked with `existing`), and writes the token. Returns (token id, keyslot).
pub fn enroll_tpm2(
    luks: &mut Luks2,
    existing: Existing<'_>,
    tpm: &mut Tpm,
    binding: &Tpm2Binding,
) -> Result<(u32, u32), EnrollError> {
    use base64::Engine;
    let (key, pem, signed_pcrs) = match &binding.signed {
        Some((pem, pcrs)) => {
            let key = PcrSigningKey::from_pem(pem).map_err(EnrollError::Key)?;
            (Some(key), Some(pem.clone()), pcrs.clone())
        }
        None => (None, None, Vec::new()),
    };
    let selection = PcrSelection::sha256(&binding.pcrs);
    let values = if selection.is_empty() {
        Vec::new()
    } else {
        tpm.pcr_read(&selection)?
    };
    let pol = binding_policy(key.as_ref(), &selection, &values);
    let secret = mixed_random(tpm, 32)?;
    let primary = tpm.create_primary_srk()?;
    let sealed = tpm.create_sealed(&primary, &secret, &pol);
    tpm.flush(primary.handle)?;
    let sealed = sealed?;

    minimal_pbkdf(luks)?;
    let keyslot = luks.add_keyslot(existing, &passphrase(&secret))?;
    let token = SystemdTpm2Token {
        kind: TOKEN_TYPE.into(),
        keyslots: vec![keyslot.to_string()],
        blob: encode_blob(&sealed),
        pcrs: binding.pcrs.clone(),
        pcr_bank: "sha256".into(),
        primary_alg: "ecc".into(),
        policy_hash: hex::encode(pol),
        pin: false,
        pubkey: pem.map(|p| base64::engine::general_purpose::STANDARD.encode(p)),
        pubkey_pcrs: signed_pcrs,
    };
    let json = serde_json::to_value(&token).map_err(|e| LuksError::BadToken(e.to_string()))?;
    let id = luks.add_token(&json, keyslot)?;
    Ok((id, keyslot))
}

/// systemd's recovery key: 32 random bytes as 64 modhex characters in groups of 8.
pub fn format_recovery_key(raw: &[u8; 32]) -> String {
    const MODHEX: &[u8; 16] = b"cbdefghijklnrtuv";
    raw.chunks(4)
        .map(|group| {
            group
                .iter()
                .flat_map(|b| {
                    [
                        MODHEX[(b >> 4) as usize] as char,
                        MODHEX[(b & 15) as usize] as char,
                    ]
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Adds a recovery-key keyslot and its `systemd-recovery` token. Returns the key,
/// to be shown once, and the keyslot.
pub fn enroll_recovery_key(
    luks: &mut Luks2,
    existing: Existing<'_>,
    raw: &[u8; 32],
) -> Result<(String, u32), EnrollError> {
    let key = format_recovery_key(raw);
    // The key carries 256 bits: a slow KDF would add nothing but boot time.
    minimal_pbkdf(luks)?;
    let keyslot = luks.add_keyslot(existing, key.as_bytes())?;
    let json = serde_json::json!({"type": "systemd-recovery", "keyslots": [keyslot.to_string()]});
    luks.add_token(&json, keyslot)?;
    Ok((key, keyslot))
}

/// PBKDF2 with 1000 iterations, as systemd-cryptenroll uses for high-entropy keys.
pub(super) fn minimal_pbkdf(luks: &mut Luks2) -> Result<(), LuksError> {
    let kdf = CryptPbkdfType {
        type_: CryptKdf::Pbkdf2,
        hash: Some("sha512".into()),
        time_ms: 0,
        iterations: 1000,
        max_memory_kb: 0,
        parallel_threads: 0,
        flags: libcryptsetup_rs::consts::flags::CryptPbkdf::NO_BENCHMARK,
    };
    luks.set_pbkdf(&kdf)
}

impl Luks2 {
    fn library(&self, what: &'static str, e: impl std::fmt::Display) -> LuksError {
        LuksError::Library {
            path: self.path.clone(),
            what,
            detail: e.to_string(),
        }
    }

    fn set_pbkdf(&mut self, kdf: &CryptPbkdfType) -> Result<(), LuksError> {
        self.device
            .settings_handle()
            .set_pbkdf_type(kdf)
            .map_err(|e| self.library("set PBKDF", e))
    }

    fn add_keyslot(&mut self, existing: Existing<'_>, new: &[u8]) -> Result<u32, LuksError> {
        let added = match existing {
            Existing::Passphrase(p) => self.device.keyslot_handle().add_by_passphrase(None, p, new),
            Existing::VolumeKey(vk) => self.device.keyslot_handle().add_by_key(
                None,
                Some(libcryptsetup_rs::Either::Left(vk)),
                new,
                libcryptsetup_rs::consts::flags::CryptVolumeKey::empty(),
            ),
        };
        added.map_err(|e| self.library("add keyslot (is the existing key right?)", e))
    }

    fn add_token(&mut self, json: &serde_json::Value, keyslot: u32) -> Result<u32, LuksError> {
        let id = self
            .device
            .token_handle()
            .json_set(TokenInput::AddToken(json))
            .map_err(|e| self.library("add token", e))?;
        // json_set already records the keyslot list; assigning makes libcryptsetup's
        // own bookkeeping agree.
        let _ = self.device.token_handle().assign_keyslot(id, Some(keyslot));
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_key_is_modhex_in_eight_groups() {
        let mut raw = [0u8; 32];
        raw[0] = 0x0f;
        raw[1] = 0xf0;
        let key = format_recovery_key(&raw);
        assert_eq!(key.len(), 64 + 7);
        assert!(key.starts_with("cvvc"));
        assert_eq!(key.split('-').count(), 8);
        assert!(key.split('-').all(|g| g.len() == 8));
        assert!(
            key.chars()
                .all(|c| c == '-' || "cbdefghijklnrtuv".contains(c))
        );
    }

    #[test]
    fn binding_policy_orders_authorize_before_pcrs() {
        let sel = PcrSelection::sha256(&[7]);
        let plain = binding_policy(None, &sel, &[[0; 32]]);
        assert_eq!(plain, policy::policy_pcr(&[0; 32], &sel, &[[0; 32]]));
        assert_eq!(
            binding_policy(None, &PcrSelection::sha256(&[]), &[]),
            [0; 32]
        );
    }
}
