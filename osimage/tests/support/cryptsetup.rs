//! `cryptsetup open --test-passphrase`: the peer's own check of a passphrase, shared
//! by the TPM tests and the unlock benchmark.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Whether cryptsetup opens `img` with `passphrase`, trying only `keyslot` when given
/// (otherwise cryptsetup first tries the password slot's slow Argon2id).
pub fn accepts(img: &Path, keyslot: Option<u32>, passphrase: &str) -> bool {
    let mut cmd = Command::new("cryptsetup");
    cmd.args(["open", "--test-passphrase", "--key-file", "-"]);
    if let Some(slot) = keyslot {
        cmd.arg("--key-slot").arg(slot.to_string());
    }
    let mut child = cmd
        .arg(img)
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(passphrase.as_bytes())
        .unwrap();
    child.wait().unwrap().success()
}
