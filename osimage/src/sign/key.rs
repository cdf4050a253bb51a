//! Signing keys: RSA-2048 (PKCS#1 v1.5), which every consumer takes, or EC P-256
//! (ECDSA), which the kernel's PKCS#7 verifier, openssl and DSSE take too. Both sign
//! SHA-256 digests.

use std::path::Path;

use p256::ecdsa::signature::{Signer, Verifier};
use rsa::pkcs1v15;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::signature::SignatureEncoding;
use sha2::Sha256;
use spki::SubjectPublicKeyInfoOwned;

use super::SignError;

/// The kinds of key `osimage genkey` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    Rsa2048,
    P256,
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "rsa" | "rsa2048" | "rsa-2048" => Ok(KeyAlgorithm::Rsa2048),
            "p256" | "p-256" | "ec" | "ecdsa" | "prime256v1" | "secp256r1" => {
                Ok(KeyAlgorithm::P256)
            }
            _ => Err(format!("unknown key algorithm `{s}` (rsa2048 or p256)")),
        }
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::Rsa2048 => "rsa2048",
            KeyAlgorithm::P256 => "p256",
        })
    }
}

/// A private signing key.
// A build holds one or two keys for its whole run; boxing the larger would buy
// nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum PrivateKey {
    Rsa(rsa::RsaPrivateKey),
    P256(p256::ecdsa::SigningKey),
}

/// A public verification key.
#[derive(Debug, Clone)]
pub enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
}

fn sign_err(e: impl std::fmt::Display) -> SignError {
    SignError::Sign(e.to_string())
}

impl PrivateKey {
    pub fn generate(algorithm: KeyAlgorithm) -> Result<PrivateKey, SignError> {
        let mut rng = rand_core::OsRng;
        Ok(match algorithm {
            KeyAlgorithm::Rsa2048 => {
                PrivateKey::Rsa(rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(sign_err)?)
            }
            KeyAlgorithm::P256 => PrivateKey::P256(p256::ecdsa::SigningKey::random(&mut rng)),
        })
    }

    /// Reads a PEM private key: PKCS#8 (RSA or EC P-256), PKCS#1 RSA, or SEC1 EC
    /// (what `openssl ecparam -genkey` writes).
    pub fn load(path: &Path) -> Result<PrivateKey, SignError> {
        let pem = super::read(path)?;
        Self::from_pem(&pem).map_err(|why| SignError::Parse {
            path: path.display().to_string(),
            what: "private key (PEM: RSA, or EC P-256)",
            why,
        })
    }

    fn from_pem(pem: &str) -> Result<PrivateKey, String> {
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::Rsa(k));
        }
        if let Ok(k) = p256::SecretKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::P256(k.into()));
        }
        if let Ok(k) = p256::SecretKey::from_sec1_pem(pem) {
            return Ok(PrivateKey::P256(k.into()));
        }
        use rsa::pkcs1::DecodeRsaPrivateKey;
        rsa::RsaPrivateKey::from_pkcs1_pem(pem)
            .map(PrivateKey::Rsa)
            .map_err(|e| e.to_string())
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PrivateKey::Rsa(_) => KeyAlgorithm::Rsa2048,
            PrivateKey::P256(_) => KeyAlgorithm::P256,
        }
    }

    pub fn to_pkcs8_pem(&self) -> Result<String, SignError> {
        let pem = match self {
            PrivateKey::Rsa(k) => k.to_pkcs8_pem(LineEnding::LF),
            PrivateKey::P256(k) => p256::SecretKey::from(k).to_pkcs8_pem(LineEnding::LF),
        };
        pem.map(|z| z.to_string()).map_err(sign_err)
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::Rsa(k) => PublicKey::Rsa(k.to_public_key()),
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
        }
    }

    /// A signature over the SHA-256 of `message`: PKCS#1 v1.5, or ECDSA in DER as
    /// X.509, CMS and DSSE carry it.
    pub fn sign_sha256(&self, message: &[u8]) -> Vec<u8> {
        match self {
            PrivateKey::Rsa(k) => pkcs1v15::SigningKey::<Sha256>::new(k.clone())
                .sign(message)
                .to_vec(),
            PrivateKey::P256(k) => {
                let sig: p256::ecdsa::DerSignature = k.sign(message);
                sig.to_vec()
            }
        }
    }

    /// The RSA key, for what takes only RSA: signed PCR policies, whose public half
    /// systemd 252 loads into the TPM for TPM2_PolicyAuthorize as an RSA key only.
    pub fn into_rsa(self, path: &Path) -> Result<rsa::RsaPrivateKey, SignError> {
        match self {
            PrivateKey::Rsa(k) => Ok(k),
            PrivateKey::P256(_) => Err(SignError::Parse {
                path: path.display().to_string(),
                what: "PCR signing key",
                why: "is an EC P-256 key; PCR policies are signed with RSA, the only key \
                      type systemd 252 (Debian 12) accepts in .pcrpkey for \
                      TPM2_PolicyAuthorize (make one with `osimage genkey --algorithm rsa2048`)"
                    .into(),
            }),
        }
    }
}

impl PublicKey {
    pub fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<PublicKey, SignError> {
        let der = der::Encode::to_der(spki).map_err(sign_err)?;
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(&der) {
            return Ok(PublicKey::Rsa(k));
        }
        p256::ecdsa::VerifyingKey::from_public_key_der(&der)
            .map(PublicKey::P256)
            .map_err(|e| SignError::Parse {
                path: "<certificate>".into(),
                what: "public key (RSA or EC P-256)",
                why: e.to_string(),
            })
    }

    pub fn spki(&self) -> Result<SubjectPublicKeyInfoOwned, SignError> {
        match self {
            PublicKey::Rsa(k) => SubjectPublicKeyInfoOwned::from_key(k.clone()),
            PublicKey::P256(k) => SubjectPublicKeyInfoOwned::from_key(*k),
        }
        .map_err(sign_err)
    }

    /// PEM SubjectPublicKeyInfo.
    pub fn to_pem(&self) -> Result<String, SignError> {
        match self {
            PublicKey::Rsa(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::P256(k) => k.to_public_key_pem(LineEnding::LF),
        }
        .map_err(sign_err)
    }

    /// Checks a [`PrivateKey::sign_sha256`] signature.
    pub fn verify_sha256(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Rsa(k) => pkcs1v15::Signature::try_from(signature).is_ok_and(|sig| {
                pkcs1v15::VerifyingKey::<Sha256>::new(k.clone())
                    .verify(message, &sig)
                    .is_ok()
            }),
            PublicKey::P256(k) => p256::ecdsa::DerSignature::try_from(signature)
                .is_ok_and(|sig| k.verify(message, &sig).is_ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_algorithms_sign_verify_and_round_trip_through_pem() {
        for alg in [KeyAlgorithm::Rsa2048, KeyAlgorithm::P256] {
            let key = PrivateKey::generate(alg).unwrap();
            assert_eq!(key.algorithm(), alg);
            let sig = key.sign_sha256(b"root hash");
            let public = key.public_key();
            assert!(public.verify_sha256(b"root hash", &sig), "{alg}");
            assert!(!public.verify_sha256(b"root hasH", &sig), "{alg}");
            let again = PrivateKey::from_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
            assert!(
                again.public_key().verify_sha256(b"root hash", &sig),
                "{alg}"
            );
            let spki = public.spki().unwrap();
            let from_spki = PublicKey::from_spki(&spki).unwrap();
            assert!(from_spki.verify_sha256(b"root hash", &sig), "{alg}");
        }
    }

    #[test]
    fn an_ec_key_is_refused_where_only_rsa_will_do() {
        let key = PrivateKey::generate(KeyAlgorithm::P256).unwrap();
        let e = key.into_rsa(Path::new("pcr.key")).unwrap_err().to_string();
        assert!(
            e.starts_with("pcr.key: not a usable PCR signing key: is an EC P-256 key"),
            "{e}"
        );
        assert_eq!("P-256".parse::<KeyAlgorithm>(), Ok(KeyAlgorithm::P256));
        assert!("ed25519".parse::<KeyAlgorithm>().is_err());
    }
}
