//! The TPM client: frames commands with their authorization areas, sends them, checks
//! and decrypts responses, and unmarshals them with tpm2-protocol.

use tpm2_protocol::basic::{TpmHandle, TpmUint16, TpmUint32};
use tpm2_protocol::data::{
    Tpm2bDigest, Tpm2bName, Tpm2bNonce, Tpm2bPrivate, Tpm2bPublic, Tpm2bSensitiveCreate,
    Tpm2bSensitiveData, TpmAlgId, TpmCap, TpmCc, TpmPt, TpmRc, TpmRcBase, TpmSe, TpmlPcrSelection,
    TpmsSensitiveCreate, TpmtSymDef, TpmtTkVerified, TpmuCapabilities, TpmuPublicId,
    TpmuSymKeyBits, TpmuSymMode,
};
use tpm2_protocol::frame::{
    TpmCreateCommand, TpmCreatePrimaryCommand, TpmCreatePrimaryResponse, TpmCreateResponse,
    TpmFlushContextCommand, TpmFlushContextResponse, TpmFrame, TpmGetCapabilityCommand,
    TpmGetCapabilityResponse, TpmGetRandomCommand, TpmGetRandomResponse, TpmHeader, TpmLoadCommand,
    TpmLoadExternalResponse, TpmLoadResponse, TpmPcrExtendResponse, TpmPcrReadCommand,
    TpmPcrReadResponse, TpmPolicyAuthorizeCommand, TpmPolicyAuthorizeResponse,
    TpmPolicyGetDigestCommand, TpmPolicyGetDigestResponse, TpmPolicyPcrCommand,
    TpmPolicyPcrResponse, TpmStartAuthSessionCommand, TpmStartAuthSessionResponse,
    TpmUnmarshalBody, TpmUnsealCommand, TpmUnsealResponse, TpmVerifySignatureResponse,
};
use tpm2_protocol::{TpmMarshal, TpmUnmarshal, TpmWriter};

use super::policy::{PcrSelection, object_name, rsa_public_area};
use super::session::{self, Session, SessionKind};
use super::template;
use super::transport::Transport;
use super::{Tpm2Error, crypto};

/// TPM_RH_OWNER.
pub const RH_OWNER: u32 = 0x4000_0001;
/// TPM_RH_NULL.
pub const RH_NULL: u32 = 0x4000_0007;

const ST_NO_SESSIONS: u16 = 0x8001;
const RC_RETRY: u32 = 0x922;
const RC_YIELDED: u32 = 0x908;
const RC_TESTING: u32 = 0x90a;
const RETRIES: u64 = 50;
const ST_SESSIONS: u16 = 0x8002;

/// How a command is authorized.
#[derive(Debug)]
pub enum Auth<'a> {
    None,
    /// The password session with an empty password (objects made here have no
    /// authValue; the policy is what protects them).
    Password,
    /// An HMAC or policy session; `names` are the Names of the command's handles.
    Session(&'a mut Session, &'a [&'a [u8]]),
}

/// A command as it goes on the wire, before framing.
struct Command {
    cc: u32,
    name: String,
    handles: Vec<u8>,
    params: Vec<u8>,
}

impl Command {
    fn typed<C: TpmFrame + TpmHeader>(cmd: &C) -> Result<Command, Tpm2Error> {
        let mut buf = vec![0u8; 4096];
        let handles = {
            let mut w = TpmWriter::new(&mut buf);
            cmd.marshal_handles(&mut w).map_err(marshal)?;
            w.as_bytes().to_vec()
        };
        let params = {
            let mut w = TpmWriter::new(&mut buf);
            cmd.marshal_parameters(&mut w).map_err(marshal)?;
            w.as_bytes().to_vec()
        };
        Ok(Command {
            cc: C::CC.value(),
            name: format!("TPM2_{:?}", C::CC),
            handles,
            params,
        })
    }
}

fn marshal(e: tpm2_protocol::TpmError) -> Tpm2Error {
    Tpm2Error::Malformed(format!("{e:?}"))
}

/// The primary storage key, as systemd makes it.
#[derive(Debug, Clone)]
pub struct Primary {
    pub handle: u32,
    pub name: Vec<u8>,
    pub x: Vec<u8>,
    pub y: Vec<u8>,
}

/// A loaded object.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub handle: u32,
    pub name: Vec<u8>,
}

/// A sealed data object as TPM2_Create returns it: what goes into a token's blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub private: Vec<u8>,
    pub public: Vec<u8>,
}

pub struct Tpm {
    transport: Box<dyn Transport>,
}

impl std::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tpm")
    }
}

impl Tpm {
    pub fn new(transport: Box<dyn Transport>) -> Tpm {
        Tpm { transport }
    }

    fn execute<R: TpmUnmarshalBody>(
        &mut self,
        mut cmd: Command,
        mut auth: Auth<'_>,
    ) -> Result<R, Tpm2Error> {
        let auth_area = match auth {
            Auth::None => None,
            Auth::Password => Some(session::password_auth()),
            Auth::Session(ref mut s, names) => {
                s.roll_nonce()?;
                if s.attributes & session::DECRYPT != 0 {
                    s.encrypt_command(&mut cmd.params)?;
                }
                Some(s.command_auth(cmd.cc, names, &cmd.params))
            }
        };
        let mut frame = Vec::with_capacity(32 + cmd.handles.len() + cmd.params.len());
        let tag = if auth_area.is_some() {
            ST_SESSIONS
        } else {
            ST_NO_SESSIONS
        };
        frame.extend_from_slice(&tag.to_be_bytes());
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(&cmd.cc.to_be_bytes());
        frame.extend_from_slice(&cmd.handles);
        if let Some(area) = &auth_area {
            frame.extend_from_slice(&(area.len() as u32).to_be_bytes());
            frame.extend_from_slice(area);
        }
        frame.extend_from_slice(&cmd.params);
        let size = (frame.len() as u32).to_be_bytes();
        frame[2..6].copy_from_slice(&size);

        let short = || Tpm2Error::Malformed(format!("{}: short response", cmd.name));
        let mut attempt = 0;
        let response = loop {
            let response = self.transport.transact(&frame)?;
            if response.len() < 10 {
                return Err(short());
            }
            let rc = u32::from_be_bytes([response[6], response[7], response[8], response[9]]);
            // The TPM did not run the command (busy, self-testing, yielded): the same
            // frame, nonces included, is still valid.
            if matches!(rc, RC_RETRY | RC_YIELDED | RC_TESTING) && attempt < RETRIES {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10 * attempt));
                continue;
            }
            if rc != 0 {
                return Err(rc_error(&cmd.name, rc));
            }
            break response;
        };
        let rtag = u16::from_be_bytes([response[0], response[1]]);
        let body = &response[10..];
        let handle_len = R::HANDLES * 4;
        if body.len() < handle_len {
            return Err(short());
        }
        let (handles, rest) = body.split_at(handle_len);
        let mut params;
        if rtag == ST_SESSIONS {
            if rest.len() < 4 {
                return Err(short());
            }
            let psize = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let rest = &rest[4..];
            if rest.len() < psize {
                return Err(short());
            }
            params = rest[..psize].to_vec();
            let auths = &rest[psize..];
            if let Auth::Session(s, _) = auth {
                let (nonce, auths) = take_tpm2b(auths).ok_or_else(short)?;
                let (&attrs, auths) = auths.split_first().ok_or_else(short)?;
                let (hmac, _) = take_tpm2b(auths).ok_or_else(short)?;
                s.check_response(cmd.cc, &params, nonce, attrs, hmac)?;
                if s.attributes & session::ENCRYPT != 0 {
                    s.decrypt_response(&mut params)?;
                }
            }
        } else {
            params = rest.to_vec();
        }
        R::unmarshal_body(handles, &params)
            .map_err(|e| Tpm2Error::Malformed(format!("{}: {e:?}", cmd.name)))
    }

    fn run<C: TpmFrame + TpmHeader, R: TpmUnmarshalBody>(
        &mut self,
        cmd: &C,
        auth: Auth<'_>,
    ) -> Result<R, Tpm2Error> {
        self.execute(Command::typed(cmd)?, auth)
    }

    /// TPM2_GetRandom, looping until `n` bytes came back.
    pub fn get_random(&mut self, n: usize) -> Result<Vec<u8>, Tpm2Error> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let want = (n - out.len()).min(32) as u16;
            let cmd = TpmGetRandomCommand {
                handles: [],
                bytes_requested: TpmUint16::new(want),
            };
            let r: TpmGetRandomResponse = self.run(&cmd, Auth::None)?;
            if r.random_bytes.is_empty() {
                return Err(Tpm2Error::Malformed(
                    "TPM2_GetRandom returned nothing".into(),
                ));
            }
            out.extend_from_slice(&r.random_bytes);
        }
        out.truncate(n);
        Ok(out)
    }

    /// TPM2_PCR_Read of the selection, in ascending PCR order. A TPM without the
    /// bank answers with an empty selection, which is reported as such.
    pub fn pcr_read(&mut self, selection: &PcrSelection) -> Result<Vec<[u8; 32]>, Tpm2Error> {
        let mut values = Vec::new();
        // One PCR per command: a TPM answers at most 8 digests per PCR_Read and
        // silently leaves out the rest, and a missing bank shows as an empty answer.
        for pcr in selection.pcrs() {
            let one = PcrSelection {
                bank: selection.bank,
                mask: 1 << pcr,
            };
            let cmd = TpmPcrReadCommand {
                handles: [],
                pcr_selection_in: pcr_list(&one)?,
            };
            let r: TpmPcrReadResponse = self.run(&cmd, Auth::None)?;
            let digest = r.pcr_values.iter().next().ok_or(Tpm2Error::NoSha256Bank)?;
            let value: [u8; 32] = digest[..].try_into().map_err(|_| Tpm2Error::NoSha256Bank)?;
            values.push(value);
        }
        Ok(values)
    }

    /// TPM2_PCR_Extend of one sha256 digest into `pcr`, as a measuring stub does.
    pub fn pcr_extend(&mut self, pcr: u32, digest: &[u8; 32]) -> Result<(), Tpm2Error> {
        let mut params = 1u32.to_be_bytes().to_vec();
        params.extend_from_slice(&super::policy::ALG_SHA256.to_be_bytes());
        params.extend_from_slice(digest);
        let cmd = Command {
            cc: TpmCc::PcrExtend.value(),
            name: "TPM2_PCR_Extend".into(),
            handles: pcr.to_be_bytes().to_vec(),
            params,
        };
        let _: TpmPcrExtendResponse = self.execute(cmd, Auth::Password)?;
        Ok(())
    }

    /// TPM2_CreatePrimary of systemd's ECC P-256 storage key in the owner hierarchy.
    /// The same template always gives the same key, so nothing is persisted.
    pub fn create_primary_srk(&mut self) -> Result<Primary, Tpm2Error> {
        let cmd = TpmCreatePrimaryCommand {
            handles: [TpmHandle::new(RH_OWNER)],
            in_sensitive: Tpm2bSensitiveCreate::default(),
            in_public: Tpm2bPublic {
                inner: template::srk_ecc(),
            },
            outside_info: Default::default(),
            creation_pcr: TpmlPcrSelection::default(),
        };
        let r: TpmCreatePrimaryResponse = self.run(&cmd, Auth::Password)?;
        let TpmuPublicId::Ecc(point) = r.out_public.inner.unique else {
            return Err(Tpm2Error::Malformed(
                "the storage key is not an ECC key".into(),
            ));
        };
        Ok(Primary {
            handle: r.handles[0].value(),
            name: r.name.to_vec(),
            x: point.x.to_vec(),
            y: point.y.to_vec(),
        })
    }

    /// TPM2_StartAuthSession, salted through `salt_key` (ECDH), with AES-128-CFB
    /// parameter encryption and SHA-256.
    pub fn start_session(
        &mut self,
        kind: SessionKind,
        salt_key: Option<&Primary>,
    ) -> Result<Session, Tpm2Error> {
        let nonce_caller = crypto::random(32)?;
        let (tpm_key, salt, encrypted_salt) = match salt_key {
            Some(key) => {
                let s = crypto::ecc_salt(&key.x, &key.y)?;
                // TPM2B_ENCRYPTED_SECRET holding a TPMS_ECC_POINT.
                let mut point = Vec::with_capacity(68);
                for c in [&s.ephemeral_x, &s.ephemeral_y] {
                    point.extend_from_slice(&(c.len() as u16).to_be_bytes());
                    point.extend_from_slice(c);
                }
                (key.handle, Some(s.salt), point)
            }
            None => (RH_NULL, None, Vec::new()),
        };
        let cmd = TpmStartAuthSessionCommand {
            handles: [TpmHandle::new(tpm_key), TpmHandle::new(RH_NULL)],
            nonce_caller: Tpm2bNonce::try_from(nonce_caller.as_slice()).map_err(marshal)?,
            encrypted_salt: encrypted_salt.as_slice().try_into().map_err(marshal)?,
            session_type: match kind {
                SessionKind::Hmac => TpmSe::Hmac,
                SessionKind::Policy => TpmSe::Policy,
                SessionKind::Trial => TpmSe::Trial,
            },
            symmetric: TpmtSymDef {
                algorithm: TpmAlgId::Aes,
                key_bits: TpmuSymKeyBits::Aes(TpmUint16::new(128)),
                mode: TpmuSymMode::Aes(TpmAlgId::Cfb),
            },
            auth_hash: TpmAlgId::Sha256,
        };
        let r: TpmStartAuthSessionResponse = self.run(&cmd, Auth::None)?;
        Ok(Session::new(
            r.handles[0].value(),
            kind,
            salt.as_deref(),
            nonce_caller,
            r.nonce_tpm.to_vec(),
        ))
    }

    /// TPM2_PolicyPCR with the current values (an empty pcrDigest).
    pub fn policy_pcr(
        &mut self,
        session: &Session,
        selection: &PcrSelection,
    ) -> Result<(), Tpm2Error> {
        let cmd = TpmPolicyPcrCommand {
            handles: [TpmHandle::new(session.handle)],
            pcr_digest: Tpm2bDigest::default(),
            pcrs: pcr_list(selection)?,
        };
        let _: TpmPolicyPcrResponse = self.run(&cmd, Auth::None)?;
        Ok(())
    }

    /// TPM2_PolicyAuthorize against a ticket from [`verify_signature`](Self::verify_signature).
    pub fn policy_authorize(
        &mut self,
        session: &Session,
        approved_policy: &[u8],
        key_name: &[u8],
        ticket: TpmtTkVerified,
    ) -> Result<(), Tpm2Error> {
        let cmd = TpmPolicyAuthorizeCommand {
            handles: [TpmHandle::new(session.handle)],
            approved_policy: Tpm2bDigest::try_from(approved_policy).map_err(marshal)?,
            policy_ref: Tpm2bNonce::default(),
            key_sign: Tpm2bName::try_from(key_name).map_err(marshal)?,
            check_ticket: ticket,
        };
        let _: TpmPolicyAuthorizeResponse = self.run(&cmd, Auth::None)?;
        Ok(())
    }

    /// TPM2_PolicyGetDigest.
    pub fn policy_get_digest(&mut self, session: &Session) -> Result<Vec<u8>, Tpm2Error> {
        let cmd = TpmPolicyGetDigestCommand {
            handles: [TpmHandle::new(session.handle)],
        };
        let r: TpmPolicyGetDigestResponse = self.run(&cmd, Auth::None)?;
        Ok(r.policy_digest.to_vec())
    }

    /// TPM2_LoadExternal of an RSA public key (no private part) in the owner
    /// hierarchy, as systemd loads the PCR signing key.
    pub fn load_external_rsa(
        &mut self,
        modulus: &[u8],
        exponent: u32,
    ) -> Result<Loaded, Tpm2Error> {
        let public = rsa_public_area(modulus, exponent);
        let mut params = vec![0, 0]; // TPM2B_SENSITIVE: none
        params.extend_from_slice(&(public.len() as u16).to_be_bytes());
        params.extend_from_slice(&public);
        params.extend_from_slice(&RH_OWNER.to_be_bytes());
        let cmd = Command {
            cc: TpmCc::LoadExternal.value(),
            name: "TPM2_LoadExternal".into(),
            handles: Vec::new(),
            params,
        };
        let r: TpmLoadExternalResponse = self.execute(cmd, Auth::None)?;
        let name = r.name.to_vec();
        debug_assert_eq!(name, object_name(&public));
        Ok(Loaded {
            handle: r.handles[0].value(),
            name,
        })
    }

    /// TPM2_VerifySignature of an RSASSA-SHA256 signature over `digest`; the ticket
    /// proves it to PolicyAuthorize.
    pub fn verify_signature(
        &mut self,
        key: &Loaded,
        digest: &[u8; 32],
        signature: &[u8],
    ) -> Result<TpmtTkVerified, Tpm2Error> {
        let mut params = Vec::with_capacity(signature.len() + 40);
        params.extend_from_slice(&32u16.to_be_bytes());
        params.extend_from_slice(digest);
        params.extend_from_slice(&0x0014u16.to_be_bytes()); // TPM_ALG_RSASSA
        params.extend_from_slice(&super::policy::ALG_SHA256.to_be_bytes());
        params.extend_from_slice(&(signature.len() as u16).to_be_bytes());
        params.extend_from_slice(signature);
        let cmd = Command {
            cc: TpmCc::VerifySignature.value(),
            name: "TPM2_VerifySignature".into(),
            handles: key.handle.to_be_bytes().to_vec(),
            params,
        };
        let r: TpmVerifySignatureResponse = self.execute(cmd, Auth::None)?;
        Ok(r.validation)
    }

    /// TPM2_Create of a sealed data object holding `secret`, under `parent`, whose
    /// use is bound to `policy`. The secret travels encrypted (a salted HMAC session
    /// with the decrypt attribute).
    pub fn create_sealed(
        &mut self,
        parent: &Primary,
        secret: &[u8],
        policy: &[u8],
    ) -> Result<Sealed, Tpm2Error> {
        let mut session = self.start_session(SessionKind::Hmac, Some(parent))?;
        session.attributes = session::DECRYPT;
        let cmd = TpmCreateCommand {
            handles: [TpmHandle::new(parent.handle)],
            in_sensitive: Tpm2bSensitiveCreate {
                inner: TpmsSensitiveCreate {
                    user_auth: Default::default(),
                    data: Tpm2bSensitiveData::try_from(secret).map_err(marshal)?,
                },
            },
            in_public: Tpm2bPublic {
                inner: template::sealed_data(policy)?,
            },
            outside_info: Default::default(),
            creation_pcr: TpmlPcrSelection::default(),
        };
        let names: [&[u8]; 1] = [&parent.name];
        let result: Result<TpmCreateResponse, _> =
            self.run(&cmd, Auth::Session(&mut session, &names));
        // The session was not continued: the TPM flushed it with the command.
        let r = result?;
        Ok(Sealed {
            private: marshal_value(&r.out_private)?,
            public: marshal_value(&r.out_public)?,
        })
    }

    /// TPM2_Load of a sealed object under `parent`.
    pub fn load(
        &mut self,
        parent: &Primary,
        private: &[u8],
        public: &[u8],
    ) -> Result<Loaded, Tpm2Error> {
        let (in_private, _) = Tpm2bPrivate::unmarshal(private).map_err(marshal)?;
        let (in_public, _) = Tpm2bPublic::unmarshal(public).map_err(marshal)?;
        let cmd = TpmLoadCommand {
            handles: [TpmHandle::new(parent.handle)],
            in_private,
            in_public,
        };
        let r: TpmLoadResponse = self.run(&cmd, Auth::Password)?;
        Ok(Loaded {
            handle: r.handles[0].value(),
            name: r.name.to_vec(),
        })
    }

    /// TPM2_Unseal through a satisfied policy session, with the response encrypted.
    pub fn unseal(&mut self, object: &Loaded, session: &mut Session) -> Result<Vec<u8>, Tpm2Error> {
        session.attributes = session::ENCRYPT;
        let cmd = TpmUnsealCommand {
            handles: [TpmHandle::new(object.handle)],
        };
        let names: [&[u8]; 1] = [&object.name];
        let r: TpmUnsealResponse = self.run(&cmd, Auth::Session(session, &names))?;
        Ok(r.out_data.to_vec())
    }

    /// TPMA_PERMANENT.inLockout, from TPM2_GetCapability(TPM_PT_PERMANENT): whether
    /// the TPM refuses authorizations of DA-protected objects (sealed keys among them).
    pub fn in_lockout(&mut self) -> Result<bool, Tpm2Error> {
        const IN_LOCKOUT: u32 = 1 << 9;
        let cmd = TpmGetCapabilityCommand {
            handles: [],
            cap: TpmCap::TpmProperties,
            property: TpmUint32::new(TpmPt::Permanent as u32),
            property_count: TpmUint32::new(1),
        };
        let r: TpmGetCapabilityResponse = self.run(&cmd, Auth::None)?;
        let TpmuCapabilities::TpmProperties(props) = r.capability_data.data else {
            return Err(Tpm2Error::Malformed(
                "TPM2_GetCapability answered another capability".into(),
            ));
        };
        let permanent = props
            .iter()
            .find(|p| p.property == TpmPt::Permanent)
            .ok_or_else(|| Tpm2Error::Malformed("no TPM_PT_PERMANENT property".into()))?;
        Ok(permanent.value.value() & IN_LOCKOUT != 0)
    }

    /// The loaded transient objects (TPM_HT_TRANSIENT handles), from
    /// TPM2_GetCapability(TPM_CAP_HANDLES).
    pub fn transient_handles(&mut self) -> Result<Vec<u32>, Tpm2Error> {
        const FIRST_TRANSIENT: u32 = 0x8000_0000;
        let cmd = TpmGetCapabilityCommand {
            handles: [],
            cap: TpmCap::Handles,
            property: TpmUint32::new(FIRST_TRANSIENT),
            property_count: TpmUint32::new(64),
        };
        let r: TpmGetCapabilityResponse = self.run(&cmd, Auth::None)?;
        let TpmuCapabilities::Handles(list) = r.capability_data.data else {
            return Err(Tpm2Error::Malformed(
                "TPM2_GetCapability answered another capability".into(),
            ));
        };
        Ok(list
            .iter()
            .map(|h| h.value())
            .filter(|h| h >> 24 == 0x80)
            .collect())
    }

    /// Flushes every transient object: what a factory reset leaves behind when an
    /// earlier run died between load and flush on a TPM without a resource manager.
    pub fn flush_transient(&mut self) -> Result<usize, Tpm2Error> {
        let handles = self.transient_handles()?;
        for &h in &handles {
            self.flush(h)?;
        }
        Ok(handles.len())
    }

    /// TPM2_FlushContext. Without a resource manager (swtpm over TCP) transient
    /// objects outlive the connection, so every caller flushes what it loaded.
    pub fn flush(&mut self, handle: u32) -> Result<(), Tpm2Error> {
        let cmd = TpmFlushContextCommand {
            handles: [],
            flush_handle: TpmHandle::new(handle),
        };
        let _: TpmFlushContextResponse = self.run(&cmd, Auth::None)?;
        Ok(())
    }
}

/// The crate's TPML_PCR_SELECTION, read back from the one encoding in
/// [`PcrSelection::marshal`] so that policy math and commands cannot disagree.
fn pcr_list(selection: &PcrSelection) -> Result<TpmlPcrSelection, Tpm2Error> {
    let (list, _) = TpmlPcrSelection::unmarshal(&selection.marshal()).map_err(marshal)?;
    Ok(list)
}

fn marshal_value<T: TpmMarshal>(value: &T) -> Result<Vec<u8>, Tpm2Error> {
    let mut buf = vec![0u8; 4096];
    let mut w = TpmWriter::new(&mut buf);
    value.marshal(&mut w).map_err(marshal)?;
    Ok(w.as_bytes().to_vec())
}

fn take_tpm2b(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let size = u16::from_be_bytes([*buf.first()?, *buf.get(1)?]) as usize;
    let rest = buf.get(2..)?;
    (rest.len() >= size).then(|| rest.split_at(size))
}

fn rc_error(command: &str, rc: u32) -> Tpm2Error {
    let parsed = TpmRc::try_from(rc).ok();
    if parsed.is_some_and(|r| r.base() == TpmRcBase::Lockout) {
        return Tpm2Error::Lockout;
    }
    Tpm2Error::Rc {
        command: command.to_string(),
        code: rc,
        text: parsed.map_or_else(|| format!("0x{rc:08x}"), |r| r.to_string()),
    }
}
