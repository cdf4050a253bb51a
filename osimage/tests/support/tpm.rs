//! Driving swtpm from tests: tpm2-tools with the right TCTI, our client, stub-like
//! PCR extends, and PCR policy signatures made with openssl the way systemd-measure
//! makes them. Shared by the TPM and firstboot tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use osimage::tpm2::policy::{self, PcrSelection};
use osimage::tpm2::{TctiSpec, Tpm};
use sha2::{Digest, Sha256};
use tessera_rig::Swtpm;

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn tcti(tpm: &Swtpm) -> String {
    tpm.tcti().unwrap()
}

pub fn tool(tpm: &Swtpm, program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("TPM2TOOLS_TCTI", tcti(tpm));
    cmd
}

pub fn client(tpm: &Swtpm) -> Tpm {
    Tpm::open(&tcti(tpm).parse::<TctiSpec>().unwrap()).unwrap()
}

/// Extends `pcr` the way a measuring stub does, with tpm2-tools.
pub fn extend(tpm: &Swtpm, pcr: u32, data: &[u8]) {
    let digest = hex::encode(Sha256::digest(data));
    run(tool(tpm, "tpm2_pcrextend").arg(format!("{pcr}:sha256={digest}")));
}

/// An RSA-2048 PCR signing key pair from openssl: (`NAME.key`, `NAME.pub`) in `dir`.
pub fn pcr_keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (key, public) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    );
    run(Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .stderr(std::process::Stdio::null()));
    run(Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .stderr(std::process::Stdio::null()));
    (key, public)
}

/// A `.pcrsig` as systemd-measure writes it, for the PCR 11 value the TPM holds now,
/// signed with openssl.
pub fn pcrsig_for_current(tpm: &Swtpm, key: &Path, dir: &Path) -> PathBuf {
    let sel = PcrSelection::sha256(&[11]);
    let value = client(tpm).pcr_read(&sel).unwrap();
    let pol = policy::policy_pcr(&[0; 32], &sel, &value);
    let pol_file = dir.join("pol.bin");
    std::fs::write(&pol_file, pol).unwrap();
    let sig = run(Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg(&pol_file))
    .stdout;
    let json = serde_json::json!({"sha256": [{
        "pcrs": [11], "pkfp": "", "pol": hex::encode(pol), "sig": STANDARD.encode(sig)
    }]});
    let path = dir.join("tpm2-pcr-signature.json");
    std::fs::write(&path, json.to_string()).unwrap();
    path
}
