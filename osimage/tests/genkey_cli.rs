//! `osimage genkey`: RSA-2048 and EC P-256 keys and certificates that openssl reads,
//! and an image signed with the EC key that openssl and `verify-provenance` accept.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{Options, build, fixture, osimage, report};
use osimage::verity::sig::VeritySig;

fn genkey(dir: &Path, name: &str, extra: &[&str]) -> std::process::Output {
    osimage()
        .args(["--json", "genkey", "--out-dir"])
        .arg(dir)
        .args(["--name", name])
        .args(extra)
        .output()
        .unwrap()
}

fn openssl(args: &[&str], file: &Path) -> String {
    let out = common::run_ok(Command::new("openssl").args(args).arg(file));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn genkey_makes_keys_openssl_reads_and_never_overwrites_unasked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, algorithm, key_text, sig_alg) in [
        (
            "rsa",
            "rsa2048",
            "Private-Key: (2048 bit",
            "sha256WithRSAEncryption",
        ),
        ("ec", "p256", "NIST CURVE: P-256", "ecdsa-with-SHA256"),
    ] {
        let out = genkey(d, name, &["--algorithm", algorithm]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rep["algorithm"], algorithm);
        let key = d.join(format!("{name}.key"));
        let crt = d.join(format!("{name}.crt"));
        assert_eq!(rep["key"], key.display().to_string());
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the private key is readable by others");
        let text = openssl(&["pkey", "-noout", "-text", "-in"], &key);
        assert!(text.contains(key_text), "{text}");
        let text = openssl(&["x509", "-noout", "-text", "-in"], &crt);
        assert!(text.contains(sig_alg), "{text}");
        // openssl checks the self-signature, and the fingerprints agree.
        openssl(&["verify", "-CAfile", crt.to_str().unwrap()], &crt);
        let fp = openssl(&["x509", "-noout", "-fingerprint", "-sha256", "-in"], &crt)
            .to_lowercase()
            .replace(':', "");
        let ours = rep["certificateFingerprint"].as_str().unwrap();
        assert!(fp.contains(ours), "{fp} vs {ours}");

        // Again: refused, and the key is untouched; --force replaces it.
        let before = std::fs::read(&key).unwrap();
        let out = genkey(d, name, &["--algorithm", algorithm]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("exists (use --force"), "{stderr}");
        assert_eq!(std::fs::read(&key).unwrap(), before);
        let out = genkey(d, name, &["--algorithm", algorithm, "--force"]);
        assert!(out.status.success());
        assert_ne!(std::fs::read(&key).unwrap(), before);
    }
    // An algorithm osimage does not make is a usage error (exit 2).
    let out = genkey(d, "x", &["--algorithm", "ed25519"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ed25519"));
    assert!(!d.join("x.key").exists());
}

#[test]
fn an_ec_key_signs_the_image_and_its_provenance_but_not_pcr_policies() {
    let fx = fixture(Options::default());
    let d = fx.dir.path();
    let keys = d.join("keys");
    let out = genkey(&keys, "verity", &["--algorithm", "p256", "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let img = d.join("disk.img");
    let rep = report(&build(&fx.definition, &img, &[]));
    let root = rep["rootHash"].as_str().unwrap();

    // The signature partition's PKCS#7 is ECDSA, and openssl accepts it.
    let parts = rep["plan"]["partitions"].as_array().unwrap();
    let sig_p = parts
        .iter()
        .find(|p| p["type"] == "usr-verity-sig")
        .unwrap();
    let mut part = vec![0u8; sig_p["size"].as_u64().unwrap() as usize];
    std::os::unix::fs::FileExt::read_exact_at(
        &std::fs::File::open(&img).unwrap(),
        &mut part,
        sig_p["offset"].as_u64().unwrap(),
    )
    .unwrap();
    let sig = VeritySig::from_partition(&part).unwrap();
    assert_eq!(sig.root_hash, root);
    std::fs::write(d.join("sig.p7s"), sig.signature_der().unwrap()).unwrap();
    std::fs::write(d.join("roothash.txt"), root).unwrap();
    let printed = common::run_ok(
        Command::new("openssl")
            .args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"])
            .arg(d.join("sig.p7s")),
    );
    assert!(String::from_utf8_lossy(&printed.stdout).contains("ecdsa-with-SHA256"));
    let out = common::openssl_cms_verify(
        &d.join("sig.p7s"),
        &d.join("roothash.txt"),
        &keys.join("verity.crt"),
    );
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The provenance envelope is signed with the same key and verifies.
    common::run_ok(
        osimage()
            .args(["--json", "verify-provenance"])
            .arg(&img)
            .arg("--cert")
            .arg(keys.join("verity.crt")),
    );

    // As the PCR key, an EC key is refused before anything is written.
    let fx = fixture(Options {
        pcr_key: true,
        ..Options::default()
    });
    let keys = fx.dir.path().join("keys");
    let out = genkey(&keys, "pcr", &["--algorithm", "p256", "--force"]);
    assert!(out.status.success());
    let img = fx.dir.path().join("disk.img");
    let out = build(&fx.definition, &img, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pcr.key") && stderr.contains("is an EC P-256 key"),
        "{stderr}"
    );
    assert!(!img.exists());
}
