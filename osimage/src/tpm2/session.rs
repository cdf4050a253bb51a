//! Authorization sessions: the password session, and salted HMAC/policy sessions with
//! parameter encryption. This is the part a naive client leaves out: with it, an
//! unsealed volume key crosses the bus only encrypted under a key the bus never saw.

use sha2::{Digest, Sha256};

use super::{Tpm2Error, crypto};

/// TPM_RS_PW: the password pseudo-session.
pub const RS_PW: u32 = 0x4000_0009;

/// TPMA_SESSION bits.
pub const CONTINUE_SESSION: u8 = 0x01;
pub const DECRYPT: u8 = 0x20;
pub const ENCRYPT: u8 = 0x40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Hmac,
    Policy,
    /// A policy session that only computes a digest; it authorizes nothing.
    Trial,
}

/// A started session, as the caller tracks it.
#[derive(Debug)]
pub struct Session {
    pub handle: u32,
    pub kind: SessionKind,
    /// `KDFa(sessionAlg, salt, "ATH", nonceTPM, nonceCaller)`; empty when unsalted.
    key: Vec<u8>,
    nonce_caller: Vec<u8>,
    nonce_tpm: Vec<u8>,
    /// TPMA_SESSION bits for the next command: ENCRYPT asks the TPM to encrypt the
    /// first response parameter, DECRYPT says the first command parameter is.
    pub attributes: u8,
}

impl Session {
    pub fn new(
        handle: u32,
        kind: SessionKind,
        salt: Option<&[u8]>,
        nonce_caller: Vec<u8>,
        nonce_tpm: Vec<u8>,
    ) -> Session {
        let key = match salt {
            Some(salt) => crypto::kdf_a(salt, "ATH", &nonce_tpm, &nonce_caller, 256),
            None => Vec::new(),
        };
        Session {
            handle,
            kind,
            key,
            nonce_caller,
            nonce_tpm,
            attributes: 0,
        }
    }

    pub fn is_salted(&self) -> bool {
        !self.key.is_empty()
    }

    /// A fresh caller nonce for the next command. Call before
    /// [`encrypt_command`](Self::encrypt_command): the parameter key depends on it.
    pub fn roll_nonce(&mut self) -> Result<(), Tpm2Error> {
        self.nonce_caller = crypto::random(32)?;
        Ok(())
    }

    /// The TPMS_AUTH_COMMAND for a command whose parameters (as sent, i.e. already
    /// encrypted) are `params`, on handles whose Names are `names`.
    pub fn command_auth(&self, cc: u32, names: &[&[u8]], params: &[u8]) -> Vec<u8> {
        let cp_hash = cp_hash(cc, names, params);
        let hmac = crypto::hmac_sha256(
            &self.key,
            &[
                &cp_hash,
                &self.nonce_caller,
                &self.nonce_tpm,
                &[self.attributes],
            ],
        );
        let mut out = Vec::with_capacity(4 + 2 + 32 + 1 + 2 + 32);
        out.extend_from_slice(&self.handle.to_be_bytes());
        put_tpm2b(&mut out, &self.nonce_caller);
        out.push(self.attributes);
        put_tpm2b(&mut out, &hmac);
        out
    }

    /// Checks the TPMS_AUTH_RESPONSE of a successful command and rolls the TPM
    /// nonce. `params` are the response parameters as received (still encrypted).
    pub fn check_response(
        &mut self,
        cc: u32,
        params: &[u8],
        nonce_tpm: &[u8],
        attributes: u8,
        hmac: &[u8],
    ) -> Result<(), Tpm2Error> {
        self.nonce_tpm = nonce_tpm.to_vec();
        let mut rp = Sha256::new();
        rp.update(0u32.to_be_bytes());
        rp.update(cc.to_be_bytes());
        rp.update(params);
        let rp_hash = rp.finalize();
        let expect = crypto::hmac_sha256(
            &self.key,
            &[&rp_hash, &self.nonce_tpm, &self.nonce_caller, &[attributes]],
        );
        if crypto::same(&expect, hmac) {
            Ok(())
        } else {
            Err(Tpm2Error::ResponseHmac)
        }
    }

    /// Encrypts the first command parameter (a TPM2B) in place.
    pub fn encrypt_command(&self, params: &mut [u8]) -> Result<(), Tpm2Error> {
        let body = first_tpm2b(params)?;
        crypto::cfb(
            &self.key,
            &self.nonce_caller,
            &self.nonce_tpm,
            &mut params[body],
            true,
        );
        Ok(())
    }

    /// Decrypts the first response parameter (a TPM2B) in place. Call after
    /// [`check_response`](Self::check_response), which rolled the TPM nonce.
    pub fn decrypt_response(&self, params: &mut [u8]) -> Result<(), Tpm2Error> {
        let body = first_tpm2b(params)?;
        crypto::cfb(
            &self.key,
            &self.nonce_tpm,
            &self.nonce_caller,
            &mut params[body],
            false,
        );
        Ok(())
    }
}

/// The password session with an empty password.
pub fn password_auth() -> Vec<u8> {
    let mut out = RS_PW.to_be_bytes().to_vec();
    out.extend_from_slice(&[0, 0, 0, 0, 0]);
    out
}

/// `cpHash = H(commandCode || Name(handle)… || parameters)`.
pub fn cp_hash(cc: u32, names: &[&[u8]], params: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(cc.to_be_bytes());
    for name in names {
        h.update(name);
    }
    h.update(params);
    h.finalize().into()
}

fn put_tpm2b(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

fn first_tpm2b(params: &[u8]) -> Result<std::ops::Range<usize>, Tpm2Error> {
    if params.len() < 2 {
        return Err(Tpm2Error::Malformed("no parameter to encrypt".into()));
    }
    let size = u16::from_be_bytes([params[0], params[1]]) as usize;
    if params.len() < 2 + size {
        return Err(Tpm2Error::Malformed(format!(
            "first parameter claims {size} bytes, {} present",
            params.len() - 2
        )));
    }
    Ok(2..2 + size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn salted() -> Session {
        Session::new(
            0x0300_0000,
            SessionKind::Policy,
            Some(b"salt"),
            vec![1; 32],
            vec![2; 32],
        )
    }

    #[test]
    fn response_hmac_detects_tampering() {
        let mut s = salted();
        s.roll_nonce().ok();
        let _ = s.command_auth(0x15e, &[b"name"], &[]);
        let params = [0, 3, 9, 9, 9];
        let nonce = [5u8; 32];
        // What an honest TPM would send.
        let mut rp = Sha256::new();
        rp.update(0u32.to_be_bytes());
        rp.update(0x15eu32.to_be_bytes());
        rp.update(params);
        let good = crypto::hmac_sha256(&s.key, &[&rp.finalize(), &nonce, &s.nonce_caller, &[0]]);
        assert!(s.check_response(0x15e, &params, &nonce, 0, &good).is_ok());
        let tampered = [0, 3, 9, 9, 8];
        assert!(matches!(
            s.check_response(0x15e, &tampered, &nonce, 0, &good),
            Err(Tpm2Error::ResponseHmac)
        ));
    }

    #[test]
    fn parameter_encryption_round_trips_between_the_two_sides() {
        let s = salted();
        let mut params = vec![0, 4, 1, 2, 3, 4, 0xee];
        s.encrypt_command(&mut params).ok();
        assert_ne!(&params[2..6], &[1, 2, 3, 4]);
        assert_eq!(params[6], 0xee, "only the first parameter's bytes change");
        let mut wrong = s.key.clone();
        wrong[0] ^= 1;
        let mut copy = params.clone();
        crypto::cfb(
            &wrong,
            &s.nonce_caller,
            &s.nonce_tpm,
            &mut copy[2..6],
            false,
        );
        assert_ne!(&copy[2..6], &[1, 2, 3, 4]);
        crypto::cfb(
            &s.key,
            &s.nonce_caller,
            &s.nonce_tpm,
            &mut params[2..6],
            false,
        );
        assert_eq!(&params[2..6], &[1, 2, 3, 4]);
    }

    #[test]
    fn short_parameters_are_refused() {
        let s = salted();
        assert!(s.encrypt_command(&mut [0]).is_err());
        assert!(s.decrypt_response(&mut [0, 9, 1]).is_err());
    }
}
