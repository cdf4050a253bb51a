//! Keys, certificates and PKCS#7 signatures for verity root hashes, PCR policies
//! and provenance.
//!
//! RSA-2048 with SHA-256 and PKCS#1 v1.5 by default: what the kernel's PKCS#7
//! verifier, openssl and the TPM's PolicyAuthorize all accept. EC P-256 (ECDSA) keys
//! sign verity root hashes and provenance too (see [`key`]). RSA signatures carry no
//! signing time, so the same key over the same root hash always yields the same
//! bytes (reproducible images); ECDSA's are deterministic too (RFC 6979).

pub mod key;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
use der::{Decode, DecodePem, Encode, EncodePem};
use rsa::pkcs1v15;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

pub use key::{KeyAlgorithm, PrivateKey, PublicKey};

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a usable {what}: {why}")]
    Parse {
        path: String,
        what: &'static str,
        why: String,
    },
    #[error("certificate {cert} does not belong to key {key}")]
    Mismatch { cert: String, key: String },
    #[error("signing failed: {0}")]
    Sign(String),
}

/// A private key with its certificate.
#[derive(Debug, Clone)]
pub struct SigningIdentity {
    key: PrivateKey,
    cert: Certificate,
    cert_der: Vec<u8>,
}

fn read(path: &Path) -> Result<String, SignError> {
    std::fs::read_to_string(path).map_err(|source| SignError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Reads a PEM RSA private key (PKCS#8 or PKCS#1), as PCR policies are signed with.
pub fn load_key(path: &Path) -> Result<rsa::RsaPrivateKey, SignError> {
    PrivateKey::load(path)?.into_rsa(path)
}

impl SigningIdentity {
    /// Loads a key and certificate and checks that they belong together.
    pub fn load(key_path: &Path, cert_path: &Path) -> Result<SigningIdentity, SignError> {
        let key = PrivateKey::load(key_path)?;
        let cert =
            Certificate::from_pem(read(cert_path)?.as_bytes()).map_err(|e| SignError::Parse {
                path: cert_path.display().to_string(),
                what: "X.509 certificate (PEM)",
                why: e.to_string(),
            })?;
        let id = SigningIdentity::new(key, cert).map_err(|_| SignError::Mismatch {
            cert: cert_path.display().to_string(),
            key: key_path.display().to_string(),
        })?;
        Ok(id)
    }

    fn new(key: PrivateKey, cert: Certificate) -> Result<SigningIdentity, SignError> {
        if key.public_key().spki()? != cert.tbs_certificate.subject_public_key_info {
            return Err(SignError::Sign("certificate does not match key".into()));
        }
        let cert_der = cert.to_der().map_err(|e| SignError::Sign(e.to_string()))?;
        Ok(SigningIdentity {
            key,
            cert,
            cert_der,
        })
    }

    /// Makes a new RSA-2048 key and a self-signed certificate for it, valid ten years.
    pub fn generate(common_name: &str) -> Result<SigningIdentity, SignError> {
        Self::generate_with(common_name, KeyAlgorithm::Rsa2048)
    }

    /// Makes a new key of `algorithm` and a self-signed certificate for it, valid
    /// ten years.
    pub fn generate_with(
        common_name: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<SigningIdentity, SignError> {
        let key = PrivateKey::generate(algorithm)?;
        let cert = match &key {
            PrivateKey::Rsa(k) => self_signed::<_, pkcs1v15::Signature>(
                &pkcs1v15::SigningKey::<Sha256>::new(k.clone()),
                &key,
                common_name,
            )?,
            PrivateKey::P256(k) => {
                self_signed::<_, p256::ecdsa::DerSignature>(k, &key, common_name)?
            }
        };
        SigningIdentity::new(key, cert)
    }

    pub fn key_pem(&self) -> Result<String, SignError> {
        self.key.to_pkcs8_pem()
    }

    pub fn cert_pem(&self) -> Result<String, SignError> {
        self.cert
            .to_pem(LineEnding::LF)
            .map_err(|e| SignError::Sign(e.to_string()))
    }

    /// The public key as PEM (SubjectPublicKeyInfo), as the UKI's `.pcrpkey` holds it.
    pub fn public_key_pem(&self) -> Result<String, SignError> {
        self.key.public_key().to_pem()
    }

    pub fn private_key(&self) -> &PrivateKey {
        &self.key
    }

    /// The RSA public key, for what takes only RSA (PCR policies); `None` for EC.
    pub fn rsa_public_key(&self) -> Option<rsa::RsaPublicKey> {
        match &self.key {
            PrivateKey::Rsa(k) => Some(k.to_public_key()),
            PrivateKey::P256(_) => None,
        }
    }

    /// The RSA modulus size; `None` for an EC key.
    pub fn modulus_bits(&self) -> Option<usize> {
        self.rsa_public_key().map(|k| k.n().bits())
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// sha256 of the DER certificate, as the verity-sig JSON's `certificateFingerprint`.
    pub fn cert_fingerprint(&self) -> [u8; 32] {
        Sha256::digest(&self.cert_der).into()
    }

    /// A detached PKCS#7 / CMS SignedData (DER) over `content`, with the certificate
    /// included, as the kernel's dm-verity root hash signature check and
    /// `openssl cms -verify -binary` take it.
    pub fn sign_pkcs7_detached(&self, content: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.key {
            PrivateKey::Rsa(k) => self.pkcs7::<_, pkcs1v15::Signature>(
                &pkcs1v15::SigningKey::<Sha256>::new(k.clone()),
                content,
            ),
            PrivateKey::P256(k) => self.pkcs7::<_, p256::ecdsa::DerSignature>(k, content),
        }
    }

    fn pkcs7<S, Sig>(&self, signer: &S, content: &[u8]) -> Result<Vec<u8>, SignError>
    where
        S: CmsSigner<Sig>,
        Sig: spki::SignatureBitStringEncoding,
    {
        let e = |e: cms::builder::Error| SignError::Sign(format!("{e:?}"));
        let digest: [u8; 32] = Sha256::digest(content).into();
        let eci = EncapsulatedContentInfo {
            econtent_type: const_oid::db::rfc5911::ID_DATA,
            econtent: None,
        };
        let sha256 = AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::ID_SHA_256,
            parameters: None,
        };
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: self.cert.tbs_certificate.issuer.clone(),
            serial_number: self.cert.tbs_certificate.serial_number.clone(),
        });
        let signer_info =
            SignerInfoBuilder::new(signer, sid, sha256.clone(), &eci, Some(&digest)).map_err(e)?;
        let content_info = SignedDataBuilder::new(&eci)
            .add_digest_algorithm(sha256)
            .map_err(e)?
            .add_certificate(CertificateChoices::Certificate(self.cert.clone()))
            .map_err(e)?
            .add_signer_info::<_, Sig>(signer_info)
            .map_err(e)?
            .build()
            .map_err(e)?;
        content_info
            .to_der()
            .map_err(|e| SignError::Sign(e.to_string()))
    }
}

/// What the CMS and X.509 builders sign with: a key that names its signature
/// algorithm and carries an encodable public half.
trait CmsSigner<Sig>:
    rsa::signature::Keypair<VerifyingKey: EncodePublicKey>
    + spki::DynSignatureAlgorithmIdentifier
    + rsa::signature::Signer<Sig>
{
}

impl<S, Sig> CmsSigner<Sig> for S where
    S: rsa::signature::Keypair<VerifyingKey: EncodePublicKey>
        + spki::DynSignatureAlgorithmIdentifier
        + rsa::signature::Signer<Sig>
{
}

/// A self-signed CA certificate for `key`, valid ten years from now.
fn self_signed<S, Sig>(
    signer: &S,
    key: &PrivateKey,
    common_name: &str,
) -> Result<Certificate, SignError>
where
    S: CmsSigner<Sig>,
    Sig: spki::SignatureBitStringEncoding,
{
    let err = |e: x509_cert::builder::Error| SignError::Sign(e.to_string());
    let mut serial = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut serial);
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x01; // no leading zero octet
    let serial = SerialNumber::new(&serial).map_err(|e| SignError::Sign(e.to_string()))?;
    let validity = Validity::from_now(Duration::from_secs(10 * 365 * 24 * 3600))
        .map_err(|e| SignError::Sign(e.to_string()))?;
    let cn = common_name.replace([',', '=', '+', '\\', '"'], "_");
    let subject =
        Name::from_str(&format!("CN={cn}")).map_err(|e| SignError::Sign(e.to_string()))?;
    let mut builder = CertificateBuilder::new(
        Profile::Manual { issuer: None },
        serial,
        validity,
        subject,
        key.public_key().spki()?,
        signer,
    )
    .map_err(err)?;
    builder
        .add_extension(&BasicConstraints {
            ca: true,
            path_len_constraint: None,
        })
        .map_err(err)?;
    builder
        .add_extension(&KeyUsage(
            KeyUsages::DigitalSignature | KeyUsages::KeyCertSign,
        ))
        .map_err(err)?;
    builder.build::<Sig>().map_err(err)
}

/// Verifies a detached PKCS#7 / CMS SignedData (DER) over `content` against a
/// trusted certificate: the signer's messageDigest attribute must be the sha256 of
/// `content`, and the signature over the signed attributes must verify with the
/// trusted certificate's key (RSA PKCS#1 v1.5 or ECDSA P-256, SHA-256). Certificates
/// embedded in the message are not trusted for anything.
pub fn verify_pkcs7_detached(
    sig_der: &[u8],
    content: &[u8],
    trusted: &Certificate,
) -> Result<(), SignError> {
    use cms::content_info::ContentInfo;
    use cms::signed_data::SignedData;
    let bad = |why: &str| SignError::Parse {
        path: "<signature>".into(),
        what: "PKCS#7 signature",
        why: why.to_owned(),
    };
    let ci = ContentInfo::from_der(sig_der).map_err(|e| bad(&e.to_string()))?;
    if ci.content_type != const_oid::db::rfc5911::ID_SIGNED_DATA {
        return Err(bad("not SignedData"));
    }
    let sd: SignedData = ci.content.decode_as().map_err(|e| bad(&e.to_string()))?;
    let key = cert_public_key(trusted)?;
    let digest = Sha256::digest(content);
    for si in sd.signer_infos.0.iter() {
        if si.digest_alg.oid != const_oid::db::rfc5912::ID_SHA_256 {
            continue;
        }
        let Some(attrs) = &si.signed_attrs else {
            // Without signed attributes the signature is over the content itself.
            if key.verify_sha256(content, si.signature.as_bytes()) {
                return Ok(());
            }
            continue;
        };
        let md = attrs
            .iter()
            .find(|a| a.oid == const_oid::db::rfc5911::ID_MESSAGE_DIGEST)
            .and_then(|a| a.values.iter().next())
            .and_then(|v| v.decode_as::<der::asn1::OctetString>().ok());
        if md.as_ref().map(|o| o.as_bytes()) != Some(digest.as_slice()) {
            continue;
        }
        let signed = attrs.to_der().map_err(|e| bad(&e.to_string()))?;
        if key.verify_sha256(&signed, si.signature.as_bytes()) {
            return Ok(());
        }
    }
    Err(SignError::Sign(
        "no signature in the PKCS#7 message verifies with the trusted certificate for this content"
            .into(),
    ))
}

/// Reads a PEM certificate.
pub fn load_cert(path: &Path) -> Result<Certificate, SignError> {
    Certificate::from_pem(read(path)?.as_bytes()).map_err(|e| SignError::Parse {
        path: path.display().to_string(),
        what: "X.509 certificate (PEM)",
        why: e.to_string(),
    })
}

/// The public key a certificate carries.
pub fn cert_public_key(cert: &Certificate) -> Result<PublicKey, SignError> {
    PublicKey::from_spki(&cert.tbs_certificate.subject_public_key_info)
}

/// Parses a DER certificate (for checks and tests).
pub fn parse_cert_der(der: &[u8]) -> Result<Certificate, SignError> {
    Certificate::from_der(der).map_err(|e| SignError::Parse {
        path: "<der>".into(),
        what: "X.509 certificate",
        why: e.to_string(),
    })
}
