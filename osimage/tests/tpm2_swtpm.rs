//! The TPM2 client and `osimage unlock` against a real TPM (swtpm) and the peers
//! that define the formats: tpm2-tools' trial sessions for policy digests,
//! systemd-cryptenroll for tokens, cryptsetup for LUKS2 keyslots, openssl for PCR
//! policy signatures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use osimage::tpm2::SessionKind;
use osimage::tpm2::policy::{self, PcrSelection};
use sha2::{Digest, Sha256};
use tessera_rig::Swtpm;

#[path = "support/cryptsetup.rs"]
mod cryptsetup;
#[path = "support/tpm.rs"]
mod tpm;
use tpm::{client, extend, pcr_keypair, pcrsig_for_current, run, tcti, tool};

/// A LUKS2 image with passphrase "pass1" in keyslot 0 (cheap PBKDF: tests only).
fn luks_image(dir: &Path) -> PathBuf {
    let img = dir.join("disk.img");
    let pw = dir.join("pw");
    std::fs::write(&pw, "pass1").unwrap();
    run(Command::new("truncate").arg("-s").arg("24M").arg(&img));
    run(Command::new("cryptsetup")
        .args(["luksFormat", "--type", "luks2", "--batch-mode"])
        .args(["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"])
        .arg("--key-file")
        .arg(&pw)
        .arg(&img));
    img
}

fn cryptenroll(tpm: &Swtpm, img: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("systemd-cryptenroll");
    cmd.env("PASSWORD", "pass1");
    if args.iter().any(|a| a.starts_with("--tpm2")) {
        cmd.arg(format!("--tpm2-device={}", tcti(tpm)));
    }
    run(cmd.args(args).arg(img).stdin(std::process::Stdio::null()))
}

fn unlock(tpm: &Swtpm, img: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_osimage"))
        .args(["unlock", "--test", "--device"])
        .arg(img)
        .arg("--tpm")
        .arg(tcti(tpm))
        .args(extra)
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn policy_digests_equal_tpm2_tools_trial_sessions() {
    let tpm = Swtpm::tcp().unwrap();
    extend(&tpm, 7, b"secure boot db");
    extend(&tpm, 11, b"uki");
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);

    // tpm2-tools: PolicyPCR(7,11) in a trial session.
    run(tool(&tpm, "tpm2_startauthsession")
        .arg("-S")
        .arg(d("s.ctx")));
    run(tool(&tpm, "tpm2_policypcr")
        .arg("-S")
        .arg(d("s.ctx"))
        .args(["-l", "sha256:7,11", "-L"])
        .arg(d("pcr.pol")));
    run(tool(&tpm, "tpm2_flushcontext").arg(d("s.ctx")));
    let theirs = std::fs::read(d("pcr.pol")).unwrap();

    // Ours: pure, from PCR values our client read.
    let sel = PcrSelection::sha256(&[7, 11]);
    let mut ours = client(&tpm);
    let values = ours.pcr_read(&sel).unwrap();
    assert_eq!(values.len(), 2);
    assert_eq!(policy::policy_pcr(&[0; 32], &sel, &values).to_vec(), theirs);

    // Ours, on the TPM: a trial session through our own client.
    let session = ours.start_session(SessionKind::Trial, None).unwrap();
    ours.policy_pcr(&session, &sel).unwrap();
    assert_eq!(ours.policy_get_digest(&session).unwrap(), theirs);
    ours.flush(session.handle).unwrap();
    // swtpm serves one connection at a time: let the tools in.
    drop(ours);

    // PolicyAuthorize with a loaded RSA key's name.
    let (_, public) = pcr_keypair(dir.path(), "k");
    run(tool(&tpm, "tpm2_loadexternal")
        .args(["-C", "o", "-G", "rsa", "-u"])
        .arg(&public)
        .arg("-c")
        .arg(d("k.ctx"))
        .arg("-n")
        .arg(d("k.name")));
    run(tool(&tpm, "tpm2_flushcontext").arg("-t"));
    run(tool(&tpm, "tpm2_startauthsession")
        .arg("-S")
        .arg(d("s.ctx")));
    run(tool(&tpm, "tpm2_policyauthorize")
        .arg("-S")
        .arg(d("s.ctx"))
        .arg("-L")
        .arg(d("auth.pol"))
        .arg("-n")
        .arg(d("k.name"))
        .arg("-i")
        .arg(d("pcr.pol")));
    run(tool(&tpm, "tpm2_flushcontext").arg(d("s.ctx")));
    let name = std::fs::read(d("k.name")).unwrap();
    assert_eq!(
        policy::policy_authorize(&name, b"").to_vec(),
        std::fs::read(d("auth.pol")).unwrap()
    );
}

#[test]
fn client_commands_round_trip_on_swtpm() {
    let tpm = Swtpm::tcp().unwrap();
    let mut c = client(&tpm);
    let a = c.get_random(48).unwrap();
    let b = c.get_random(48).unwrap();
    assert_eq!(a.len(), 48);
    assert_ne!(a, b);

    // PCR_Extend, checked against tpm2_pcrread.
    let sel = PcrSelection::sha256(&[16]);
    let before = c.pcr_read(&sel).unwrap()[0];
    let digest: [u8; 32] = Sha256::digest(b"event").into();
    c.pcr_extend(16, &digest).unwrap();
    let after = c.pcr_read(&sel).unwrap()[0];
    let mut h = Sha256::new();
    h.update(before);
    h.update(digest);
    assert_eq!(after, <[u8; 32]>::from(h.finalize()));
    // swtpm serves one connection at a time.
    drop(c);
    let theirs = run(tool(&tpm, "tpm2_pcrread").arg("sha256:16"));
    let text = String::from_utf8_lossy(&theirs.stdout).to_uppercase();
    assert!(text.contains(&hex::encode_upper(after)), "{text}");
    let mut c = client(&tpm);

    // Seal under a PCR 16 policy with our own Create (secret sent encrypted), and
    // unseal it in a salted, response-encrypted policy session.
    let primary = c.create_primary_srk().unwrap();
    let pol = policy::policy_pcr(&[0; 32], &sel, &[after]);
    let sealed = c
        .create_sealed(&primary, b"volume key bytes", &pol)
        .unwrap();
    let object = c.load(&primary, &sealed.private, &sealed.public).unwrap();
    let mut session = c
        .start_session(SessionKind::Policy, Some(&primary))
        .unwrap();
    assert!(session.is_salted());
    c.policy_pcr(&session, &sel).unwrap();
    assert_eq!(c.policy_get_digest(&session).unwrap(), pol);
    assert_eq!(
        c.unseal(&object, &mut session).unwrap(),
        b"volume key bytes"
    );

    // After the PCR moves, the same object refuses.
    c.pcr_extend(16, &digest).unwrap();
    let mut session = c
        .start_session(SessionKind::Policy, Some(&primary))
        .unwrap();
    c.policy_pcr(&session, &sel).unwrap();
    let err = c.unseal(&object, &mut session).unwrap_err();
    assert!(err.is_policy_failure(), "{err}");
    c.flush(object.handle).unwrap();
    c.flush(primary.handle).unwrap();
}

#[test]
fn unlocks_a_systemd_cryptenroll_pcr7_token_and_refuses_after_pcr7_changes() {
    let tpm = Swtpm::tcp().unwrap();
    extend(&tpm, 7, b"secure boot state");
    let dir = tempfile::tempdir().unwrap();
    let img = luks_image(dir.path());
    let recovery = cryptenroll(&tpm, &img, &["--recovery-key"]);
    let recovery = String::from_utf8_lossy(&recovery.stdout).trim().to_string();
    cryptenroll(&tpm, &img, &["--tpm2-pcrs=7"]);

    let out = unlock(&tpm, &img, &["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["keyslot"], 2, "{json}");

    // Secure Boot state changes: the TPM refuses, the error names PCR 7, exit 4.
    extend(&tpm, 7, b"a new db key");
    let out = unlock(&tpm, &img, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("PCR 7"), "{}", stderr(&out));
    // The recovery key still opens the volume.
    assert!(cryptsetup::accepts(&img, None, &recovery));
}

#[test]
fn signed_pcr11_policy_survives_an_update_without_reenrollment() {
    let mut tpm = Swtpm::tcp().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = pcr_keypair(dir.path(), "pcr");
    let img = luks_image(dir.path());
    extend(&tpm, 7, b"secure boot state");
    cryptenroll(
        &tpm,
        &img,
        &[
            "--tpm2-pcrs=7",
            &format!("--tpm2-public-key={}", public.display()),
            "--tpm2-public-key-pcrs=11",
        ],
    );

    // Boot of version 1: the stub measured UKI v1 into PCR 11.
    extend(&tpm, 11, b"uki v1");
    let v1 = dir.path().join("v1");
    std::fs::create_dir(&v1).unwrap();
    let sig_v1 = pcrsig_for_current(&tpm, &key, &v1);
    let no_sig = unlock(&tpm, &img, &[]);
    assert_eq!(no_sig.status.code(), Some(4), "{}", stderr(&no_sig));
    let out = unlock(&tpm, &img, &["--signature", sig_v1.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Reboot into version 2: new PCR 11, a new signature from the same key, the same
    // token. The old signature no longer matches; the new one does.
    tpm.restart().unwrap();
    extend(&tpm, 7, b"secure boot state");
    extend(&tpm, 11, b"uki v2");
    let out = unlock(&tpm, &img, &["--signature", sig_v1.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("PCR 11"), "{}", stderr(&out));
    let v2 = dir.path().join("v2");
    std::fs::create_dir(&v2).unwrap();
    let sig_v2 = pcrsig_for_current(&tpm, &key, &v2);
    let out = unlock(&tpm, &img, &["--signature", sig_v2.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A policy signed by someone else's key gets nowhere.
    let (other, _) = pcr_keypair(dir.path(), "other");
    let forged = dir.path().join("forged");
    std::fs::create_dir(&forged).unwrap();
    let sig_forged = pcrsig_for_current(&tpm, &other, &forged);
    let out = unlock(&tpm, &img, &["--signature", sig_forged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
}

#[test]
fn bad_input_gets_clear_errors() {
    let tpm = Swtpm::tcp().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img = luks_image(dir.path());

    // No token at all.
    let out = unlock(&tpm, &img, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no systemd-tpm2 token"),
        "{}",
        stderr(&out)
    );

    // No TPM listening.
    cryptenroll(&tpm, &img, &["--tpm2-pcrs=7"]);
    let port = tpm.port().unwrap();
    drop(tpm);
    let out = Command::new(env!("CARGO_BIN_EXE_osimage"))
        .args(["unlock", "--test", "--device"])
        .arg(&img)
        .arg("--tpm")
        .arg(format!("swtpm:host=127.0.0.1,port={port}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("no TPM"), "{}", stderr(&out));

    // A corrupted LUKS2 header: both copies' magic overwritten.
    let tpm = Swtpm::tcp().unwrap();
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[..6].copy_from_slice(b"XXXXXX");
    bytes[0x4000..0x4006].copy_from_slice(b"XXXXXX");
    let broken = dir.path().join("broken.img");
    std::fs::write(&broken, &bytes).unwrap();
    let out = unlock(&tpm, &broken, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a readable LUKS2 volume"),
        "{}",
        stderr(&out)
    );

    // A bad --tpm spelling.
    let out = Command::new(env!("CARGO_BIN_EXE_osimage"))
        .args(["unlock", "--test", "--tpm", "mssim:port=1", "--device"])
        .arg(&img)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("bad TPM address"), "{}", stderr(&out));
}

fn token_json(img: &Path, id: u32) -> serde_json::Value {
    let out = run(Command::new("cryptsetup")
        .args(["token", "export", "--token-id", &id.to_string()])
        .arg(img));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn our_enrollment_matches_systemd_cryptenroll_and_systemd_reads_it() {
    use osimage::luks::Luks2;
    use osimage::luks::enroll::{Existing, Tpm2Binding, enroll_recovery_key, enroll_tpm2};

    let tpm = Swtpm::tcp().unwrap();
    extend(&tpm, 7, b"secure boot state");
    extend(&tpm, 11, b"uki v1");
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = pcr_keypair(dir.path(), "pcr");
    let img = luks_image(dir.path());

    // systemd's tokens first: token 0 (PCR 7), token 1 (PCR 7 + signed PCR 11).
    cryptenroll(&tpm, &img, &["--tpm2-pcrs=7"]);
    let signed_args = [
        "--tpm2-pcrs=7".to_string(),
        format!("--tpm2-public-key={}", public.display()),
        "--tpm2-public-key-pcrs=11".to_string(),
    ];
    let signed_args: Vec<&str> = signed_args.iter().map(String::as_str).collect();
    cryptenroll(&tpm, &img, &signed_args);

    // Ours: the same two bindings, and a recovery key.
    let pem = std::fs::read_to_string(&public).unwrap();
    let mut luks = Luks2::open(&img).unwrap();
    let mut c = client(&tpm);
    let plain = Tpm2Binding {
        pcrs: vec![7],
        signed: None,
    };
    let signed = Tpm2Binding {
        pcrs: vec![7],
        signed: Some((pem, vec![11])),
    };
    let (ours_plain, _) =
        enroll_tpm2(&mut luks, Existing::Passphrase(b"pass1"), &mut c, &plain).unwrap();
    let (ours_signed, _) =
        enroll_tpm2(&mut luks, Existing::Passphrase(b"pass1"), &mut c, &signed).unwrap();
    let raw: [u8; 32] = osimage::tpm2::crypto::random(32)
        .unwrap()
        .try_into()
        .unwrap();
    let (recovery, _) =
        enroll_recovery_key(&mut luks, Existing::Passphrase(b"pass1"), &raw).unwrap();
    drop(c);
    drop(luks);

    // Same fields, same policy digests as systemd computed on the TPM.
    for (theirs, ours) in [(0, ours_plain), (1, ours_signed)] {
        let (t, o) = (token_json(&img, theirs), token_json(&img, ours));
        assert_eq!(keys(&t), keys(&o), "{t}\n{o}");
        assert_eq!(t["tpm2-policy-hash"], o["tpm2-policy-hash"], "{t}\n{o}");
        assert_eq!(t["tpm2_pubkey"], o["tpm2_pubkey"]);
    }

    // systemd-cryptenroll, listing the slots, sees our tpm2 and recovery slots.
    let listing = run(Command::new("systemd-cryptenroll").arg(&img));
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    let types: Vec<&str> = listing
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        types,
        ["password", "tpm2", "tpm2", "tpm2", "tpm2", "recovery"],
        "{listing}"
    );
    assert!(cryptsetup::accepts(&img, None, &recovery));

    // And our own unlock opens our tokens' keyslots.
    let sig = pcrsig_for_current(&tpm, &key, dir.path());
    for id in [ours_plain, ours_signed] {
        let out = unlock(
            &tpm,
            &img,
            &[
                "--json",
                "--token",
                &id.to_string(),
                "--signature",
                sig.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["token"], id);
    }
}

#[test]
fn a_tpm_without_a_sha256_bank_is_named_as_such() {
    use osimage::luks::Luks2;
    use osimage::luks::enroll::{EnrollError, Existing, Tpm2Binding, enroll_tpm2};
    use osimage::tpm2::Tpm2Error;

    let tpm = Swtpm::tcp_with_banks(&["sha1"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img = luks_image(dir.path());
    let before = std::fs::read(&img).unwrap();
    let mut luks = Luks2::open(&img).unwrap();
    let binding = Tpm2Binding {
        pcrs: vec![7],
        signed: None,
    };
    let err = enroll_tpm2(
        &mut luks,
        Existing::Passphrase(b"pass1"),
        &mut client(&tpm),
        &binding,
    )
    .unwrap_err();
    assert!(
        matches!(err, EnrollError::Tpm(Tpm2Error::NoSha256Bank)),
        "{err}"
    );
    assert!(err.to_string().contains("no sha256 PCR bank"), "{err}");
    drop(luks);
    // Refused before a keyslot or token was written.
    assert_eq!(std::fs::read(&img).unwrap(), before);
}
