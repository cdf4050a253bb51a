//! Policy digests, computed the way the TPM extends a policy session (Part 3,
//! TPM2_PolicyPCR and TPM2_PolicyAuthorize). Pure: a token's `tpm2-policy-hash` and a
//! `.pcrsig` entry's `pol` are predicted here without a TPM.

use sha2::{Digest, Sha256};

/// TPM_CC_PolicyPCR.
pub const CC_POLICY_PCR: u32 = 0x0000_017f;
/// TPM_CC_PolicyAuthorize.
pub const CC_POLICY_AUTHORIZE: u32 = 0x0000_016a;
/// TPM_ALG_SHA256.
pub const ALG_SHA256: u16 = 0x000b;

/// A set of PCRs in one bank: one TPMS_PCR_SELECTION with a 3-byte bitmap (PCRs
/// 0-23), which is what PC-client TPMs implement and what systemd sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcrSelection {
    pub bank: u16,
    pub mask: u32,
}

impl PcrSelection {
    pub fn sha256(pcrs: &[u32]) -> PcrSelection {
        PcrSelection {
            bank: ALG_SHA256,
            mask: pcrs
                .iter()
                .filter(|&&p| p < 24)
                .fold(0, |m, p| m | (1 << p)),
        }
    }

    /// The PCR indices, ascending: the order the TPM concatenates their values in.
    pub fn pcrs(&self) -> Vec<u32> {
        (0..24).filter(|p| self.mask & (1 << p) != 0).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.mask == 0
    }

    /// TPML_PCR_SELECTION with this one entry.
    pub fn marshal(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(10);
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(&self.bank.to_be_bytes());
        out.push(3);
        out.extend_from_slice(&self.mask.to_le_bytes()[..3]);
        out
    }
}

/// The policy digest after TPM2_PolicyPCR(`selection`) from `previous`, when the PCRs
/// in the selection hold `values` (in ascending PCR order).
pub fn policy_pcr(previous: &[u8; 32], selection: &PcrSelection, values: &[[u8; 32]]) -> [u8; 32] {
    let mut pcr_digest = Sha256::new();
    for value in values {
        pcr_digest.update(value);
    }
    let mut h = Sha256::new();
    h.update(previous);
    h.update(CC_POLICY_PCR.to_be_bytes());
    h.update(selection.marshal());
    h.update(pcr_digest.finalize());
    h.finalize().into()
}

/// The policy digest after TPM2_PolicyAuthorize with the key named `key_name`. The
/// session's previous digest is replaced, not extended: that is what lets a newly
/// signed PCR policy take over from an old one.
pub fn policy_authorize(key_name: &[u8], policy_ref: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8; 32]);
    h.update(CC_POLICY_AUTHORIZE.to_be_bytes());
    h.update(key_name);
    let first: [u8; 32] = h.finalize().into();
    let mut h = Sha256::new();
    h.update(first);
    h.update(policy_ref);
    h.finalize().into()
}

/// The digest a PolicyAuthorize signer signs: `aHash = H(approvedPolicy || policyRef)`.
pub fn authorized_hash(approved_policy: &[u8], policy_ref: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(approved_policy);
    h.update(policy_ref);
    h.finalize().into()
}

/// TPMT_PUBLIC of an RSA signing key as systemd loads a PCR public key
/// (`openssl_pubkey_to_tpm2_pubkey`): decrypt|sign|userWithAuth, no symmetric and no
/// scheme, the exponent written out (not 0 for 65537).
pub fn rsa_public_area(modulus: &[u8], exponent: u32) -> Vec<u8> {
    let attributes: u32 = 0x0002_0000 | 0x0004_0000 | 0x0000_0040;
    let mut out = Vec::with_capacity(modulus.len() + 32);
    out.extend_from_slice(&0x0001u16.to_be_bytes()); // TPM_ALG_RSA
    out.extend_from_slice(&ALG_SHA256.to_be_bytes());
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes()); // authPolicy: empty
    out.extend_from_slice(&0x0010u16.to_be_bytes()); // symmetric: TPM_ALG_NULL
    out.extend_from_slice(&0x0010u16.to_be_bytes()); // scheme: TPM_ALG_NULL
    out.extend_from_slice(&((modulus.len() * 8) as u16).to_be_bytes());
    out.extend_from_slice(&exponent.to_be_bytes());
    out.extend_from_slice(&(modulus.len() as u16).to_be_bytes());
    out.extend_from_slice(modulus);
    out
}

/// An object's Name: its nameAlg, then the hash of its marshalled TPMT_PUBLIC.
pub fn object_name(public_area: &[u8]) -> Vec<u8> {
    let mut name = ALG_SHA256.to_be_bytes().to_vec();
    name.extend_from_slice(&Sha256::digest(public_area));
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_bitmap_is_little_endian_bytes() {
        let sel = PcrSelection::sha256(&[7, 11]);
        assert_eq!(sel.marshal(), [0, 0, 0, 1, 0, 0x0b, 3, 0x80, 0x08, 0]);
        assert_eq!(sel.pcrs(), [7, 11]);
        assert!(PcrSelection::sha256(&[30]).is_empty());
    }

    #[test]
    fn policy_pcr_depends_on_values_and_previous_digest() {
        let sel = PcrSelection::sha256(&[7]);
        let a = policy_pcr(&[0; 32], &sel, &[[0; 32]]);
        let b = policy_pcr(&[0; 32], &sel, &[[1; 32]]);
        let c = policy_pcr(&a, &sel, &[[0; 32]]);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn pcr_module_agrees_for_pcr_11() {
        let value = [0x42; 32];
        assert_eq!(
            crate::pcr::policy_pcr_digest(&value),
            policy_pcr(&[0; 32], &PcrSelection::sha256(&[11]), &[value])
        );
    }

    #[test]
    fn authorize_ignores_nothing_but_the_previous_digest() {
        let a = policy_authorize(b"name-a", b"");
        assert_ne!(a, policy_authorize(b"name-b", b""));
        assert_ne!(a, policy_authorize(b"name-a", b"ref"));
    }
}
