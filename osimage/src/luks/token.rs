//! systemd's `systemd-tpm2` LUKS2 token, as systemd-cryptenroll writes it and
//! systemd-cryptsetup reads it (systemd 252 field names, including the two spelled
//! with underscores).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::LuksError;
use crate::tpm2::{PcrSelection, Sealed};

pub const TOKEN_TYPE: &str = "systemd-tpm2";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemdTpm2Token {
    #[serde(rename = "type")]
    pub kind: String,
    /// Keyslot numbers, as strings (LUKS2 JSON's convention).
    pub keyslots: Vec<String>,
    /// base64 of TPM2B_PRIVATE followed by TPM2B_PUBLIC of the sealed object.
    #[serde(rename = "tpm2-blob")]
    pub blob: String,
    /// PCRs bound by value (PolicyPCR).
    #[serde(rename = "tpm2-pcrs", default)]
    pub pcrs: Vec<u32>,
    #[serde(rename = "tpm2-pcr-bank", default = "sha256")]
    pub pcr_bank: String,
    #[serde(rename = "tpm2-primary-alg", default = "ecc")]
    pub primary_alg: String,
    /// The policy digest the object was sealed with, hex.
    #[serde(rename = "tpm2-policy-hash")]
    pub policy_hash: String,
    #[serde(rename = "tpm2-pin", default)]
    pub pin: bool,
    /// base64 of the PEM public key that signs PCR policies (PolicyAuthorize).
    #[serde(
        rename = "tpm2_pubkey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pubkey: Option<String>,
    /// PCRs bound through signed policies.
    #[serde(
        rename = "tpm2_pubkey_pcrs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub pubkey_pcrs: Vec<u32>,
}

/// An RSA PCR signing key, in the two numbers the TPM is given for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrSigningKey {
    pub modulus: Vec<u8>,
    pub exponent: u32,
}

impl PcrSigningKey {
    /// From a PEM SubjectPublicKeyInfo (what `--tpm2-public-key` and `.pcrpkey` hold).
    pub fn from_pem(pem: &str) -> Result<PcrSigningKey, String> {
        use rsa::pkcs8::DecodePublicKey;
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPublicKey::from_public_key_pem(pem).map_err(|e| e.to_string())?;
        let e = key.e().to_bytes_be();
        if e.len() > 4 {
            return Err("the public exponent does not fit the TPM's 32 bits".into());
        }
        Ok(PcrSigningKey {
            modulus: key.n().to_bytes_be(),
            exponent: e.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)),
        })
    }

    /// The Name the TPM gives this key when it is loaded the way systemd loads it.
    pub fn name(&self) -> Vec<u8> {
        crate::tpm2::policy::object_name(&crate::tpm2::policy::rsa_public_area(
            &self.modulus,
            self.exponent,
        ))
    }
}

fn sha256() -> String {
    "sha256".into()
}

fn ecc() -> String {
    "ecc".into()
}

/// `tpm2-blob`: base64 of the sealed object's TPM2B_PRIVATE then TPM2B_PUBLIC.
pub fn encode_blob(sealed: &Sealed) -> String {
    let mut raw = sealed.private.clone();
    raw.extend_from_slice(&sealed.public);
    STANDARD.encode(raw)
}

impl SystemdTpm2Token {
    pub fn from_json(value: &serde_json::Value) -> Result<SystemdTpm2Token, LuksError> {
        let token: SystemdTpm2Token = serde_json::from_value(value.clone())
            .map_err(|e| LuksError::BadToken(e.to_string()))?;
        if token.kind != TOKEN_TYPE {
            return Err(LuksError::BadToken(format!(
                "type is {:?}, not {TOKEN_TYPE}",
                token.kind
            )));
        }
        if token.pcr_bank != "sha256" {
            return Err(LuksError::BadToken(format!(
                "PCR bank {} is not supported (only sha256)",
                token.pcr_bank
            )));
        }
        if token.primary_alg != "ecc" {
            return Err(LuksError::BadToken(format!(
                "primary key algorithm {} is not supported (only ecc)",
                token.primary_alg
            )));
        }
        if token.pin {
            return Err(LuksError::BadToken(
                "the token needs a PIN; osimage unlocks PIN-less tokens only".into(),
            ));
        }
        if !token.pubkey_pcrs.is_empty() && token.pubkey.is_none() {
            return Err(LuksError::BadToken(
                "tpm2_pubkey_pcrs without tpm2_pubkey".into(),
            ));
        }
        Ok(token)
    }

    pub fn keyslots(&self) -> Result<Vec<u32>, LuksError> {
        self.keyslots
            .iter()
            .map(|k| {
                k.parse()
                    .map_err(|_| LuksError::BadToken(format!("keyslot {k:?} is not a number")))
            })
            .collect()
    }

    pub fn selection(&self) -> PcrSelection {
        PcrSelection::sha256(&self.pcrs)
    }

    pub fn signed_selection(&self) -> PcrSelection {
        PcrSelection::sha256(&self.pubkey_pcrs)
    }

    pub fn policy_hash(&self) -> Result<Vec<u8>, LuksError> {
        hex::decode(&self.policy_hash)
            .map_err(|_| LuksError::BadToken("tpm2-policy-hash is not hex".into()))
    }

    /// Splits the blob into TPM2B_PRIVATE and TPM2B_PUBLIC by their size prefixes.
    pub fn sealed(&self) -> Result<Sealed, LuksError> {
        let raw = STANDARD
            .decode(&self.blob)
            .map_err(|_| LuksError::BadToken("tpm2-blob is not base64".into()))?;
        let take = |buf: &[u8], what: &str| -> Result<usize, LuksError> {
            let size = buf
                .get(..2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
                .ok_or_else(|| LuksError::BadToken(format!("tpm2-blob ends before its {what}")))?;
            if buf.len() < 2 + size {
                return Err(LuksError::BadToken(format!(
                    "tpm2-blob's {what} is truncated"
                )));
            }
            Ok(2 + size)
        };
        let private_len = take(&raw, "private part")?;
        let public_len = take(&raw[private_len..], "public part")?;
        if private_len + public_len != raw.len() {
            return Err(LuksError::BadToken("tpm2-blob has trailing bytes".into()));
        }
        Ok(Sealed {
            private: raw[..private_len].to_vec(),
            public: raw[private_len..].to_vec(),
        })
    }

    /// The PCR signing key, decoded from the PEM in `tpm2_pubkey`.
    pub fn signing_key(&self) -> Result<Option<PcrSigningKey>, LuksError> {
        let Some(b64) = &self.pubkey else {
            return Ok(None);
        };
        let pem = STANDARD
            .decode(b64)
            .map_err(|_| LuksError::BadToken("tpm2_pubkey is not base64".into()))?;
        let pem = String::from_utf8(pem)
            .map_err(|_| LuksError::BadToken("tpm2_pubkey is not PEM text".into()))?;
        PcrSigningKey::from_pem(&pem)
            .map(Some)
            .map_err(|e| LuksError::BadToken(format!("tpm2_pubkey: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn systemd_token() -> serde_json::Value {
        // Shape of what systemd-cryptenroll 252 wrote on the test machine.
        serde_json::json!({
            "type": "systemd-tpm2",
            "keyslots": ["1"],
            "tpm2-blob": STANDARD.encode([0, 2, 0xaa, 0xbb, 0, 3, 1, 2, 3]),
            "tpm2-pcrs": [7],
            "tpm2-pcr-bank": "sha256",
            "tpm2-primary-alg": "ecc",
            "tpm2-policy-hash": "8b5682d81b29435d08d79278150611dc7e5923b2fefcce684a09577b40130a8b",
            "tpm2-pin": false
        })
    }

    #[test]
    fn reads_systemd_fields_and_splits_the_blob() {
        let token = SystemdTpm2Token::from_json(&systemd_token()).ok();
        let token = token.as_ref();
        assert_eq!(token.map(|t| t.pcrs.clone()), Some(vec![7]));
        assert_eq!(token.and_then(|t| t.keyslots().ok()), Some(vec![1]));
        let sealed = token.and_then(|t| t.sealed().ok());
        assert_eq!(
            sealed,
            Some(Sealed {
                private: vec![0, 2, 0xaa, 0xbb],
                public: vec![0, 3, 1, 2, 3]
            })
        );
        assert_eq!(
            sealed.map(|s| encode_blob(&s)),
            token.map(|t| t.blob.clone())
        );
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let cases: [(&str, serde_json::Value); 5] = [
            ("type", serde_json::json!("systemd-fido2")),
            ("tpm2-pcr-bank", serde_json::json!("sha1")),
            ("tpm2-primary-alg", serde_json::json!("rsa")),
            ("tpm2-pin", serde_json::json!(true)),
            ("tpm2_pubkey_pcrs", serde_json::json!([11])),
        ];
        for (key, value) in cases {
            let mut json = systemd_token();
            json[key] = value;
            assert!(SystemdTpm2Token::from_json(&json).is_err(), "{key}");
        }
        let mut json = systemd_token();
        json["tpm2-blob"] = serde_json::json!(STANDARD.encode([0, 9, 1]));
        let token = SystemdTpm2Token::from_json(&json).ok();
        assert!(token.is_some_and(|t| t.sealed().is_err()));
    }
}
