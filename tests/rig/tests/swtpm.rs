//! The rig's swtpm, exercised with tpm2-tools: seal to PCR 7, unseal, extend, fail.

use std::path::Path;
use std::process::{Command, Output};

use tessera_rig::Swtpm;

fn tpm2(tpm: &Swtpm, dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("TPM2TOOLS_TCTI", tpm.tcti().unwrap())
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (cargo xtask deps installs tpm2-tools)", args[0]));
    // Without a resource manager, transient objects and sessions stay loaded in the
    // TPM between commands and fill its slots; flush them after every command.
    for what in ["-t", "-s"] {
        let _ = Command::new("tpm2_flushcontext")
            .arg(what)
            .env("TPM2TOOLS_TCTI", tpm.tcti().unwrap())
            .output();
    }
    out
}

fn ok(tpm: &Swtpm, dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = tpm2(tpm, dir, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}\nswtpm log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        tpm.log()
    );
    out.stdout
}

fn seal_to_pcr7(tpm: &Swtpm, dir: &Path) {
    ok(
        tpm,
        dir,
        &["tpm2_createprimary", "-C", "o", "-c", "primary.ctx"],
    );
    ok(tpm, dir, &["tpm2_pcrread", "-o", "pcr7.bin", "sha256:7"]);
    ok(
        tpm,
        dir,
        &[
            "tpm2_createpolicy",
            "--policy-pcr",
            "-l",
            "sha256:7",
            "-f",
            "pcr7.bin",
            "-L",
            "policy.dat",
        ],
    );
    std::fs::write(dir.join("secret"), b"tessera sealed secret").unwrap();
    ok(
        tpm,
        dir,
        &[
            "tpm2_create",
            "-C",
            "primary.ctx",
            "-L",
            "policy.dat",
            "-i",
            "secret",
            "-u",
            "seal.pub",
            "-r",
            "seal.priv",
        ],
    );
}

fn unseal(tpm: &Swtpm, dir: &Path) -> Output {
    // The primary is re-derived from the owner seed each time, as a real boot would.
    ok(
        tpm,
        dir,
        &["tpm2_createprimary", "-C", "o", "-c", "primary.ctx"],
    );
    ok(
        tpm,
        dir,
        &[
            "tpm2_load",
            "-C",
            "primary.ctx",
            "-u",
            "seal.pub",
            "-r",
            "seal.priv",
            "-c",
            "seal.ctx",
        ],
    );
    tpm2(
        tpm,
        dir,
        &["tpm2_unseal", "-c", "seal.ctx", "-p", "pcr:sha256:7"],
    )
}

#[test]
fn seal_to_pcr7_then_extend_breaks_unseal_and_restart_restores_it() {
    let mut tpm = Swtpm::tcp().unwrap();
    assert!(
        tpm.tcti()
            .unwrap()
            .starts_with("swtpm:host=127.0.0.1,port=")
    );
    assert_eq!(tpm.ctrl_port(), tpm.port().map(|p| p + 1));
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    seal_to_pcr7(&tpm, dir);
    let out = unseal(&tpm, dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"tessera sealed secret");

    ok(
        &tpm,
        dir,
        &[
            "tpm2_pcrextend",
            "7:sha256=0000000000000000000000000000000000000000000000000000000000000001",
        ],
    );
    let out = unseal(&tpm, dir);
    assert!(
        !out.status.success(),
        "unseal must fail after PCR 7 changed"
    );
    assert!(out.stdout.is_empty());

    // A restart keeps the TPM's seeds (so the same primary and sealed blob still
    // work) and resets the PCRs (so the policy is satisfied again).
    tpm.restart().unwrap();
    let out = unseal(&tpm, dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"tessera sealed secret");
}

#[test]
fn two_tpms_are_independent_and_leave_nothing_behind() {
    let a = Swtpm::tcp().unwrap();
    let b = Swtpm::tcp().unwrap();
    assert_ne!(a.port(), b.port());
    let state = a.state_dir().to_owned();
    let port = a.port().unwrap();
    drop(a);
    assert!(!state.exists(), "state dir must be removed");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "swtpm must be gone after drop"
    );
    drop(b);
}

#[test]
fn unix_mode_exposes_a_control_socket() {
    let tpm = Swtpm::unix().unwrap();
    let sock = tpm.socket().unwrap();
    assert!(sock.exists());
    assert!(tpm.tcti().is_none());
}
