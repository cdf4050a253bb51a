//! The session cryptography of TPM 2.0 Part 1 (KDFa, KDFe, ECDH salting, CFB
//! parameter encryption, authorization HMACs). Pure functions over bytes; the only
//! randomness is the ephemeral ECDH key, drawn from the OS.

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use ring::{agreement, hmac, rand};
use sha2::{Digest, Sha256};

use super::Tpm2Error;

/// SP800-108 counter-mode KDF with HMAC-SHA256, as TPM 2.0 Part 1 §11.4.10.2 defines
/// it: `label` is followed by a NUL, and the output length in bits closes the input.
pub fn kdf_a(key: &[u8], label: &str, context_u: &[u8], context_v: &[u8], bits: u32) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(bytes + 32);
    let mut counter = 1u32;
    while out.len() < bytes {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&counter.to_be_bytes());
        ctx.update(label.as_bytes());
        ctx.update(&[0]);
        ctx.update(context_u);
        ctx.update(context_v);
        ctx.update(&bits.to_be_bytes());
        out.extend_from_slice(ctx.sign().as_ref());
        counter += 1;
    }
    out.truncate(bytes);
    out
}

/// The SP800-56A concatenation KDF of Part 1 §11.4.10.3, over the ECDH x-coordinate
/// `z`. As in KDFa the label carries its NUL.
pub fn kdf_e(z: &[u8], label: &str, party_u: &[u8], party_v: &[u8], bits: u32) -> Vec<u8> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(bytes + 32);
    let mut counter = 1u32;
    while out.len() < bytes {
        let mut h = Sha256::new();
        h.update(counter.to_be_bytes());
        h.update(z);
        h.update(label.as_bytes());
        h.update([0]);
        h.update(party_u);
        h.update(party_v);
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(bytes);
    out
}

/// A salt for a session bound to an ECC P-256 key, and the ephemeral point the TPM
/// needs to recover it (the `encryptedSalt` of TPM2_StartAuthSession).
#[derive(Debug, Clone)]
pub struct EccSalt {
    pub salt: Vec<u8>,
    pub ephemeral_x: Vec<u8>,
    pub ephemeral_y: Vec<u8>,
}

/// ECDH with the TPM key's public point `(x, y)`, then KDFe with label "SECRET".
pub fn ecc_salt(tpm_x: &[u8], tpm_y: &[u8]) -> Result<EccSalt, Tpm2Error> {
    if tpm_x.len() != 32 || tpm_y.len() != 32 {
        return Err(Tpm2Error::Malformed(format!(
            "the salt key is not a P-256 point ({} and {} bytes)",
            tpm_x.len(),
            tpm_y.len()
        )));
    }
    let rng = rand::SystemRandom::new();
    let private = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng)
        .map_err(|_| Tpm2Error::Crypto("cannot generate an ephemeral P-256 key".into()))?;
    let public = private
        .compute_public_key()
        .map_err(|_| Tpm2Error::Crypto("cannot derive the ephemeral public key".into()))?;
    // Uncompressed SEC1: 0x04 || x || y.
    let public = public.as_ref();
    let (ephemeral_x, ephemeral_y) = (public[1..33].to_vec(), public[33..65].to_vec());
    let mut peer = Vec::with_capacity(65);
    peer.push(4);
    peer.extend_from_slice(tpm_x);
    peer.extend_from_slice(tpm_y);
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, peer);
    // ring hands the shared x-coordinate to the closure: the `Z` of KDFe.
    let salt = agreement::agree_ephemeral(private, &peer, |z| {
        kdf_e(z, "SECRET", &ephemeral_x, tpm_x, 256)
    })
    .map_err(|_| {
        Tpm2Error::Crypto("ECDH with the TPM's key failed (point not on the curve)".into())
    })?;
    Ok(EccSalt {
        salt,
        ephemeral_x,
        ephemeral_y,
    })
}

/// AES-128-CFB over a parameter, with key and IV from KDFa(sessionKey, "CFB", …).
pub fn cfb(
    session_key: &[u8],
    nonce_newer: &[u8],
    nonce_older: &[u8],
    data: &mut [u8],
    encrypt: bool,
) {
    let kiv = kdf_a(session_key, "CFB", nonce_newer, nonce_older, 128 + 128);
    let (key, iv) = kiv.split_at(16);
    if encrypt {
        cfb_mode::Encryptor::<aes::Aes128>::new(key.into(), iv.into()).encrypt(data);
    } else {
        cfb_mode::Decryptor::<aes::Aes128>::new(key.into(), iv.into()).decrypt(data);
    }
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// Constant-time comparison for HMACs.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `n` random bytes from the OS.
pub fn random(n: usize) -> Result<Vec<u8>, Tpm2Error> {
    let mut out = vec![0u8; n];
    rand::SecureRandom::fill(&rand::SystemRandom::new(), &mut out)
        .map_err(|_| Tpm2Error::Crypto("the OS random source failed".into()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdf_a_is_truncated_hmac_chain_with_bit_length() {
        let out = kdf_a(b"key", "ATH", b"u", b"v", 256);
        let expect = hmac_sha256(
            b"key",
            &[
                &1u32.to_be_bytes(),
                b"ATH\0",
                b"u",
                b"v",
                &256u32.to_be_bytes(),
            ],
        );
        assert_eq!(out, expect);
        // A longer output starts with a different block: the length is in the input.
        let long = kdf_a(b"key", "ATH", b"u", b"v", 384);
        assert_eq!(long.len(), 48);
        assert_ne!(&long[..32], &out[..]);
    }

    #[test]
    fn kdf_e_hashes_counter_z_label_and_parties() {
        let out = kdf_e(b"z", "SECRET", b"u", b"v", 256);
        let expect: [u8; 32] = Sha256::digest(b"\0\0\0\x01zSECRET\0uv").into();
        assert_eq!(out, expect);
    }

    #[test]
    fn cfb_round_trips_and_changes_the_bytes() {
        let mut data = b"the volume key never crosses the bus".to_vec();
        let orig = data.clone();
        cfb(b"session", b"newer", b"older", &mut data, true);
        assert_ne!(data, orig);
        cfb(b"session", b"newer", b"older", &mut data, false);
        assert_eq!(data, orig);
    }

    #[test]
    fn ecc_salt_rejects_points_off_the_curve() {
        assert!(ecc_salt(&[1u8; 32], &[2u8; 32]).is_err());
        assert!(ecc_salt(&[1u8; 31], &[2u8; 32]).is_err());
    }

    #[test]
    fn same_compares_whole_values() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
