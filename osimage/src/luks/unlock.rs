//! Recovering a volume's passphrase from a systemd-tpm2 token, the way
//! systemd-cryptsetup does: the same storage key, the same policy sequence (signed
//! PCRs through PolicyAuthorize first, then PCRs by value), the passphrase being the
//! base64 of the unsealed secret. The unseal runs in a salted session and its
//! response is encrypted.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{LuksError, SystemdTpm2Token};
use crate::pcr::PcrSig;
use crate::tpm2::{self, PcrSelection, SessionKind, Tpm, Tpm2Error};

#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    #[error(transparent)]
    Luks(#[from] LuksError),
    #[error(transparent)]
    Tpm(#[from] Tpm2Error),
    #[error(
        "the TPM refused to unseal the key: PCR {pcrs} (sha256) no longer holds the value the \
         key was sealed against (firmware, Secure Boot keys or boot chain changed); use the \
         recovery key, then re-enroll"
    )]
    PcrMismatch { pcrs: String },
    #[error(
        "no signed policy for the current PCR {pcrs} value (approved policy {policy}) in the \
         PCR signature; the booted UKI was not signed with this token's key"
    )]
    NoSignature { pcrs: String, policy: String },
    #[error("the token binds PCR {pcrs} through a signed policy, but no PCR signature was given")]
    SignatureMissing { pcrs: String },
}

impl UnlockError {
    /// The TPM answered but refused this boot state: the recovery key is the way in.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            UnlockError::PcrMismatch { .. }
                | UnlockError::NoSignature { .. }
                | UnlockError::SignatureMissing { .. }
        )
    }
}

fn list(pcrs: &[u32]) -> String {
    pcrs.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join("+")
}

/// The LUKS passphrase systemd derives from an unsealed secret.
pub fn passphrase(secret: &[u8]) -> Vec<u8> {
    STANDARD.encode(secret).into_bytes()
}

/// Unseals the token's secret and returns the passphrase for its keyslot.
pub fn recover_passphrase(
    tpm: &mut Tpm,
    token: &SystemdTpm2Token,
    signature: Option<&PcrSig>,
) -> Result<Vec<u8>, UnlockError> {
    let sealed = token.sealed()?;
    let primary = tpm.create_primary_srk()?;
    // Everything loaded is flushed on every path: swtpm has no resource manager.
    let mut handles = vec![primary.handle];
    let result = (|| {
        let object = tpm.load(&primary, &sealed.private, &sealed.public)?;
        handles.push(object.handle);
        let mut session = tpm.start_session(SessionKind::Policy, Some(&primary))?;
        handles.push(session.handle);
        let signed = token.signed_selection();
        if !signed.is_empty() {
            authorize_signed(tpm, &session, token, &signed, signature, &mut handles)?;
        }
        let by_value = token.selection();
        if !by_value.is_empty() {
            tpm.policy_pcr(&session, &by_value)?;
        }
        let secret = tpm.unseal(&object, &mut session).map_err(|e| {
            if e.is_policy_failure() {
                UnlockError::PcrMismatch {
                    pcrs: list(&token.pcrs),
                }
            } else {
                e.into()
            }
        })?;
        // The session ended with the command (continueSession clear).
        handles.retain(|&h| h != session.handle);
        Ok(passphrase(&secret))
    })();
    for handle in handles {
        if let Err(e) = tpm.flush(handle) {
            tracing::warn!("flushing TPM handle 0x{handle:08x}: {e}");
        }
    }
    result
}

/// PolicyPCR on the signed PCRs, then PolicyAuthorize with the `.pcrsig` entry whose
/// `pol` is the digest those PCRs give now.
fn authorize_signed(
    tpm: &mut Tpm,
    session: &tpm2::Session,
    token: &SystemdTpm2Token,
    signed: &PcrSelection,
    signature: Option<&PcrSig>,
    handles: &mut Vec<u32>,
) -> Result<(), UnlockError> {
    let pcrs = list(&token.pubkey_pcrs);
    let Some(signature) = signature else {
        return Err(UnlockError::SignatureMissing { pcrs });
    };
    let key = token
        .signing_key()?
        .ok_or_else(|| LuksError::BadToken("no tpm2_pubkey".into()))?;
    tpm.policy_pcr(session, signed)?;
    let approved = tpm.policy_get_digest(session)?;
    let approved_hex = hex::encode(&approved);
    let entry = signature
        .sha256
        .iter()
        .find(|e| e.pol == approved_hex && e.pcrs == token.pubkey_pcrs)
        .ok_or_else(|| UnlockError::NoSignature {
            pcrs: pcrs.clone(),
            policy: approved_hex.clone(),
        })?;
    let sig = STANDARD
        .decode(&entry.sig)
        .map_err(|_| LuksError::BadToken("PCR signature is not base64".into()))?;
    let loaded = tpm.load_external_rsa(&key.modulus, key.exponent)?;
    handles.push(loaded.handle);
    let digest = tpm2::policy::authorized_hash(&approved, b"");
    let ticket = tpm.verify_signature(&loaded, &digest, &sig).map_err(|e| {
        if e.rc().is_some() {
            UnlockError::NoSignature {
                pcrs: pcrs.clone(),
                policy: approved_hex.clone(),
            }
        } else {
            e.into()
        }
    })?;
    tpm.policy_authorize(session, &approved, &loaded.name, ticket)?;
    Ok(())
}
