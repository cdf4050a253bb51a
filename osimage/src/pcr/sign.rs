//! Signing PCR 11 policies for `.pcrsig`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::EncodeRsaPublicKey;
use sha2::{Digest, Sha256};

use super::{PCR, PcrSig, PcrSignature, after_phases, measure_uki, policy_pcr_digest};
use crate::sign::{PrivateKey, PublicKey, SignError};

/// sha256 of the PKCS#1 RSAPublicKey DER (OpenSSL's `i2d_PublicKey`), as systemd's
/// `pkfp`.
pub fn public_key_fingerprint(key: &rsa::RsaPublicKey) -> Result<[u8; 32], SignError> {
    let der = key
        .to_pkcs1_der()
        .map_err(|e| SignError::Sign(e.to_string()))?;
    Ok(Sha256::digest(der.as_bytes()).into())
}

/// Signs the PolicyPCR digest of every phase path.
pub fn sign_phases(
    sections: &[(&str, &[u8])],
    phases: &[&str],
    key: &rsa::RsaPrivateKey,
) -> Result<PcrSig, SignError> {
    let signer = PrivateKey::Rsa(key.clone());
    let pkfp = hex::encode(public_key_fingerprint(&key.to_public_key())?);
    let base = measure_uki(sections);
    let sha256 = phases
        .iter()
        .map(|phase| {
            let pol = policy_pcr_digest(&after_phases(base, phase));
            let sig = signer.sign_sha256(&pol);
            PcrSignature {
                pcrs: vec![PCR],
                pkfp: pkfp.clone(),
                pol: hex::encode(pol),
                sig: STANDARD.encode(sig),
            }
        })
        .collect();
    Ok(PcrSig { sha256 })
}

/// Checks one entry's signature with `key`, as the TPM would in PolicyAuthorize.
pub fn verify(entry: &PcrSignature, key: &rsa::RsaPublicKey) -> bool {
    let Ok(pol) = hex::decode(&entry.pol) else {
        return false;
    };
    let Ok(sig) = STANDARD.decode(&entry.sig) else {
        return false;
    };
    PublicKey::Rsa(key.clone()).verify_sha256(&pol, &sig)
}
