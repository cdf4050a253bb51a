//! The usr-verity-sig partition: a JSON object NUL-padded to a multiple of 4096 bytes,
//! as systemd-dissect and systemd-veritysetup read it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::sign::{SignError, SigningIdentity};

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
}
