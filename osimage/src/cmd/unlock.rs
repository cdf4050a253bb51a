//! `osimage unlock`.

use std::path::Path;
use std::process::ExitCode;

use osimage::luks::Luks2;
use osimage::luks::unlock::{UnlockError, recover_passphrase};
use osimage::pcr::PcrSig;
use osimage::tpm2::{TctiSpec, Tpm, Tpm2Error};

/// Exit status when the TPM refused this boot state.
const EXIT_REFUSED: u8 = 4;
/// Exit status when there is no usable TPM.
const EXIT_NO_TPM: u8 = 5;

pub(crate) struct UnlockArgs<'a> {
    pub device: &'a Path,
    pub test: bool,
    pub name: &'a str,
    pub tpm: &'a str,
    pub signature: Option<&'a Path>,
    pub token: Option<u32>,
}

pub(crate) fn unlock_cmd(args: &UnlockArgs<'_>, json: bool) -> ExitCode {
    let UnlockArgs {
        device, test, name, ..
    } = *args;
    match unlock(args) {
        Ok((token, keyslot)) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "device": device,
                        "token": token,
                        "keyslot": keyslot,
                        "activated": if test { None } else { Some(name) },
                    })
                );
            } else if test {
                println!(
                    "{}: token {token} recovered the key of keyslot {keyslot}",
                    device.display()
                );
            } else {
                println!(
                    "{}: opened as /dev/mapper/{name} (keyslot {keyslot})",
                    device.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("osimage: error: {e:#}");
            let code = match e.downcast_ref::<UnlockError>() {
                Some(u) if u.is_refusal() => EXIT_REFUSED,
                Some(UnlockError::Tpm(Tpm2Error::NoTpm(_) | Tpm2Error::Lockout)) => EXIT_NO_TPM,
                _ => 1,
            };
            ExitCode::from(code)
        }
    }
}

fn unlock(args: &UnlockArgs<'_>) -> anyhow::Result<(u32, u32)> {
    let UnlockArgs {
        device,
        test,
        name,
        tpm,
        signature,
        token: only,
    } = *args;
    let spec: TctiSpec = tpm.parse()?;
    let signature: Option<PcrSig> = match signature {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: not a PCR signature: {e}", path.display()))?,
            )
        }
        None => None,
    };
    let mut luks = Luks2::open(device)?;
    let mut tokens = luks.tpm2_tokens()?;
    if let Some(only) = only {
        tokens.retain(|(id, _)| *id == only);
        if tokens.is_empty() {
            anyhow::bail!(
                "{}: token {only} is not a systemd-tpm2 token",
                device.display()
            );
        }
    }
    let mut tpm = Tpm::open(&spec).map_err(UnlockError::from)?;
    let mut last = None;
    // Like systemd-cryptsetup: try each TPM2 token in turn; report the last failure.
    for (id, token) in tokens {
        tracing::info!(token = id, pcrs = ?token.pcrs, signed = ?token.pubkey_pcrs, "trying token");
        match recover_passphrase(&mut tpm, &token, signature.as_ref()) {
            Ok(passphrase) => {
                let keyslot = token.keyslots()?.first().copied();
                let slot = if test {
                    luks.check(keyslot, &passphrase)?
                } else {
                    luks.activate(name, keyslot, &passphrase)?
                };
                return Ok((id, slot));
            }
            Err(e) => {
                tracing::warn!(token = id, "{e}");
                last = Some(e);
            }
        }
    }
    Err(last.map_or_else(|| anyhow::anyhow!("no usable token"), anyhow::Error::from))
}
