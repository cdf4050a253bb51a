//! A TPM 2.0 client in Rust. tpm2-protocol marshals the structures; the transport,
//! the command framing, salted sessions with parameter encryption and the policy
//! arithmetic are ours, with ring (ECDH, HMAC, randomness) and RustCrypto's AES-CFB
//! (ring has no raw block modes).
//!
//! Policy digests are pure ([`policy`]); the client ([`Tpm`]) only talks.

mod client;
pub mod crypto;
pub mod policy;
pub mod session;
pub mod template;
pub mod transport;

pub use client::{Auth, Loaded, Primary, RH_OWNER, Sealed, Tpm};
pub use policy::PcrSelection;
pub use session::{Session, SessionKind};
pub use transport::{TctiSpec, Transport};

#[derive(Debug, thiserror::Error)]
pub enum Tpm2Error {
    #[error("no TPM: {0}")]
    NoTpm(String),
    #[error("bad TPM address {0}")]
    Tcti(String),
    #[error("talking to the TPM: {0}")]
    Io(#[from] std::io::Error),
    #[error("{command}: the TPM refused it: {text}")]
    Rc {
        command: String,
        code: u32,
        text: String,
    },
    #[error(
        "the TPM is in dictionary-attack lockout: it refuses authorizations until the lockout \
         time passes or the owner clears it (tpm2_dictionarylockout --clear-lockout)"
    )]
    Lockout,
    #[error("the TPM has no sha256 PCR bank enabled; enable it in the firmware's TPM settings")]
    NoSha256Bank,
    #[error("malformed TPM data: {0}")]
    Malformed(String),
    #[error("TPM session cryptography: {0}")]
    Crypto(String),
    #[error(
        "the TPM's response failed its HMAC check: something between here and the TPM \
         changed it"
    )]
    ResponseHmac,
}

impl Tpm2Error {
    /// The TPM response code, for errors that carry one.
    pub fn rc(&self) -> Option<u32> {
        match self {
            Tpm2Error::Rc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The policy did not match: TPM_RC_POLICY_FAIL, whatever session or parameter
    /// index it carries.
    pub fn is_policy_failure(&self) -> bool {
        self.rc().is_some_and(|rc| rc & 0xbf == 0x9d)
    }
}

impl Tpm {
    /// Opens the TPM at `spec`.
    pub fn open(spec: &TctiSpec) -> Result<Tpm, Tpm2Error> {
        Ok(Tpm::new(spec.open()?))
    }
}
