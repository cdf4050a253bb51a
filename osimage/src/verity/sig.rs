//! The usr-verity-sig partition: a JSON object NUL-padded to a multiple of 4096 bytes,
//! as systemd-dissect and systemd-veritysetup read it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use x509_cert::Certificate;

use crate::sign::{SignError, SigningIdentity, verify_pkcs7_detached};

pub const ALIGN: usize = 4096;

/// The JSON object in the signature partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VeritySig {
    /// Lowercase hex.
    pub root_hash: String,
    /// Base64 DER PKCS#7 over the hex string.
    pub signature: String,
    /// Lowercase hex sha256 of the DER certificate.
    pub certificate_fingerprint: String,
}

impl VeritySig {
    /// Signs `root_hash` (its lowercase hex string is what is signed).
    pub fn sign(root_hash: &[u8], id: &SigningIdentity) -> Result<VeritySig, SignError> {
        let hex_root = hex::encode(root_hash);
        let der = id.sign_pkcs7_detached(hex_root.as_bytes())?;
        Ok(VeritySig {
            root_hash: hex_root,
            signature: STANDARD.encode(der),
            certificate_fingerprint: hex::encode(id.cert_fingerprint()),
        })
    }

    /// The partition contents: compact JSON, a newline, NUL padding to 4 KiB.
    pub fn to_partition(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        bytes.push(b'\n');
        let len = bytes.len().div_ceil(ALIGN) * ALIGN;
        bytes.resize(len, 0);
        bytes
    }

    /// Parses partition contents (trailing NULs ignored).
    pub fn from_partition(bytes: &[u8]) -> Result<VeritySig, serde_json::Error> {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        serde_json::from_slice(&bytes[..end])
    }

    pub fn signature_der(&self) -> Result<Vec<u8>, base64::DecodeError> {
        STANDARD.decode(&self.signature)
    }

    /// The signed root hash, once the PKCS#7 signature over its hex string
    /// verified with the trusted certificate (never with one the partition brings).
    pub fn verified_root(&self, trusted: &Certificate) -> Result<[u8; 32], String> {
        let der = self
            .signature_der()
            .map_err(|e| format!("signature is not base64: {e}"))?;
        verify_pkcs7_detached(&der, self.root_hash.as_bytes(), trusted)
            .map_err(|e| e.to_string())?;
        let mut root = [0u8; 32];
        hex::decode_to_slice(&self.root_hash, &mut root)
            .map_err(|_| "root hash is not 64 hex digits".to_owned())?;
        Ok(root)
    }
}

/// The root hash systemd-veritysetup-generator sets /usr up with: the last
/// `usrhash=` on the kernel command line, as the generator reads it.
pub fn usrhash(cmdline: &str) -> Option<&str> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix("usrhash="))
        .next_back()
}

/// Why /usr's root hash is not trusted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsrSigError {
    #[error("usrhash={0} is not a 64-digit sha256 root hash")]
    Malformed(String),
    #[error("no usr-verity-sig partition holds root hash {usrhash} (found: {found})")]
    NotSigned { usrhash: String, found: String },
    #[error("the signature over root hash {usrhash} does not verify: {why}")]
    BadSignature { usrhash: String, why: String },
}

/// Finds, among the signature partitions of the disk, the one for `usrhash`, and
/// checks its signature with the trusted certificate. Returns its index in `sigs`.
/// A partition for another root hash (the other slot) is not looked at further.
pub fn check_usr(
    usrhash: &str,
    sigs: &[VeritySig],
    trusted: &Certificate,
) -> Result<usize, UsrSigError> {
    let wanted = usrhash.to_ascii_lowercase();
    if wanted.len() != 64 || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(UsrSigError::Malformed(usrhash.into()));
    }
    let Some(i) = sigs
        .iter()
        .position(|s| s.root_hash.eq_ignore_ascii_case(&wanted))
    else {
        let found: Vec<&str> = sigs.iter().map(|s| s.root_hash.as_str()).collect();
        return Err(UsrSigError::NotSigned {
            usrhash: wanted,
            found: if found.is_empty() {
                "none".into()
            } else {
                found.join(", ")
            },
        });
    };
    sigs[i]
        .verified_root(trusted)
        .map_err(|why| UsrSigError::BadSignature {
            usrhash: wanted.clone(),
            why,
        })?;
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_usrhash_counts() {
        assert_eq!(usrhash("quiet usrhash=aa ro usrhash=bb"), Some("bb"));
        assert_eq!(usrhash("quiet roothash=aa"), None);
    }

    #[test]
    fn only_a_signature_by_the_trusted_certificate_over_the_booted_hash_passes() {
        let vendor = SigningIdentity::generate("vendor").unwrap();
        let other = SigningIdentity::generate("someone else").unwrap();
        let trusted = <x509_cert::Certificate as der::Decode>::from_der(vendor.cert_der()).unwrap();
        let a = [0xaa; 32];
        let b = [0xbb; 32];
        let sigs = vec![
            VeritySig::sign(&b, &vendor).unwrap(),
            VeritySig::sign(&a, &vendor).unwrap(),
        ];
        let hex_a = hex::encode(a);
        assert_eq!(check_usr(&hex_a, &sigs, &trusted), Ok(1));
        assert_eq!(
            check_usr(&hex_a.to_uppercase(), &sigs, &trusted),
            Ok(1),
            "the command line may spell the hash in capitals"
        );

        let forged = vec![VeritySig::sign(&a, &other).unwrap()];
        assert!(matches!(
            check_usr(&hex_a, &forged, &trusted),
            Err(UsrSigError::BadSignature { .. })
        ));
        // The signature of one hash moved onto another hash's JSON.
        let mut swapped = VeritySig::sign(&b, &vendor).unwrap();
        swapped.root_hash = hex_a.clone();
        assert!(matches!(
            check_usr(&hex_a, &[swapped], &trusted),
            Err(UsrSigError::BadSignature { .. })
        ));
        assert!(matches!(
            check_usr(&hex::encode([0xcc; 32]), &sigs, &trusted),
            Err(UsrSigError::NotSigned { .. })
        ));
        assert!(matches!(
            check_usr("abc", &sigs, &trusted),
            Err(UsrSigError::Malformed(_))
        ));
    }
}
