//! Object templates. The storage key must match systemd's bit for bit: it is
//! re-created from its template on every unlock, and a token sealed by
//! systemd-cryptenroll only loads under the very same key.

use tpm2_protocol::basic::TpmUint16;
use tpm2_protocol::data::{
    Tpm2bDigest, TpmAlgId, TpmEccCurve, TpmaObject, TpmsEccParms, TpmsEccPoint, TpmsKeyedhashParms,
    TpmtEccScheme, TpmtKdfScheme, TpmtKeyedhashScheme, TpmtPublic, TpmtSymDef, TpmuPublicId,
    TpmuPublicParms, TpmuSymKeyBits, TpmuSymMode,
};

use super::Tpm2Error;

/// systemd 252's `primary_template_ecc`: a restricted decryption key on NIST P-256
/// with AES-128-CFB, no scheme, an empty unique field.
pub fn srk_ecc() -> TpmtPublic {
    TpmtPublic {
        object_type: TpmAlgId::Ecc,
        name_alg: TpmAlgId::Sha256,
        object_attributes: TpmaObject::RESTRICTED
            | TpmaObject::DECRYPT
            | TpmaObject::FIXED_TPM
            | TpmaObject::FIXED_PARENT
            | TpmaObject::SENSITIVE_DATA_ORIGIN
            | TpmaObject::USER_WITH_AUTH,
        auth_policy: Tpm2bDigest::default(),
        parameters: TpmuPublicParms::Ecc(TpmsEccParms {
            symmetric: TpmtSymDef {
                algorithm: TpmAlgId::Aes,
                key_bits: TpmuSymKeyBits::Aes(TpmUint16::new(128)),
                mode: TpmuSymMode::Aes(TpmAlgId::Cfb),
            },
            scheme: TpmtEccScheme::default(),
            curve_id: TpmEccCurve::NistP256,
            kdf: TpmtKdfScheme::default(),
        }),
        unique: TpmuPublicId::Ecc(TpmsEccPoint::default()),
    }
}

/// A sealed data object (keyedhash, no scheme) usable only through `policy`: fixed
/// to this TPM and parent, no authValue path (userWithAuth clear).
pub fn sealed_data(policy: &[u8]) -> Result<TpmtPublic, Tpm2Error> {
    Ok(TpmtPublic {
        object_type: TpmAlgId::KeyedHash,
        name_alg: TpmAlgId::Sha256,
        object_attributes: TpmaObject::FIXED_TPM | TpmaObject::FIXED_PARENT,
        auth_policy: Tpm2bDigest::try_from(policy)
            .map_err(|e| Tpm2Error::Malformed(format!("policy digest: {e:?}")))?,
        parameters: TpmuPublicParms::KeyedHash(TpmsKeyedhashParms {
            scheme: TpmtKeyedhashScheme::default(),
        }),
        unique: TpmuPublicId::KeyedHash(Tpm2bDigest::default()),
    })
}
