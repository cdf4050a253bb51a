//! PCR 11 predictions and signed policies, against systemd-measure (252), the
//! oracle. `systemd-measure sign` computes the policy on a real TPM: a swtpm here.

use std::path::Path;
use std::process::Command;

use osimage::pcr::{self, sign};
use osimage::sign::SigningIdentity;
use tessera_rig::Swtpm;

const MEASURE: &str = "/lib/systemd/systemd-measure";

struct Inputs {
    dir: tempfile::TempDir,
    files: Vec<(&'static str, &'static str, Vec<u8>)>,
}

fn inputs(with_optional: bool) -> Inputs {
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![
        (
            ".linux",
            "linux",
            (0..300_000u32)
                .map(|i| (i % 253) as u8)
                .collect::<Vec<u8>>(),
        ),
        (".osrel", "osrel", b"ID=tessera\nVERSION_ID=2.0\n".to_vec()),
        (
            ".cmdline",
            "cmdline",
            b"console=ttyS0 usrhash=0123abcd".to_vec(),
        ),
        (".initrd", "initrd", vec![0x42; 70_000]),
    ];
    if with_optional {
        files.push((".splash", "splash", b"BM not really a bitmap".to_vec()));
        files.push((
            ".pcrpkey",
            "pcrpkey",
            b"-----BEGIN PUBLIC KEY-----\nabc\n".to_vec(),
        ));
    }
    for (_, name, data) in &files {
        std::fs::write(dir.path().join(name), data).unwrap();
    }
    Inputs { dir, files }
}

fn measure_args(inp: &Inputs) -> Vec<String> {
    inp.files
        .iter()
        .map(|(_, name, _)| format!("--{name}={}", inp.dir.path().join(name).display()))
        .collect()
}

fn sections(inp: &Inputs) -> Vec<(&str, &[u8])> {
    inp.files
        .iter()
        .map(|(s, _, d)| (*s, d.as_slice()))
        .collect()
}

fn run(args: &[String]) -> serde_json::Value {
    assert!(
        Path::new(MEASURE).exists(),
        "systemd-measure missing (systemd 252)"
    );
    let out = Command::new(MEASURE).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "systemd-measure: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn predictions_equal_systemd_measure_calculate() {
    for optional in [false, true] {
        let inp = inputs(optional);
        let mut args = vec![
            "calculate".to_owned(),
            "--bank=sha256".into(),
            "--json=short".into(),
        ];
        args.extend(measure_args(&inp));
        let theirs = run(&args);
        let ours = pcr::predict(&sections(&inp), &pcr::DEFAULT_PHASES);
        let theirs = theirs["sha256"].as_array().unwrap();
        assert_eq!(theirs.len(), ours.len());
        for (t, o) in theirs.iter().zip(&ours) {
            assert_eq!(t["phase"], o.phase.as_str());
            assert_eq!(t["pcr"], 11);
            assert_eq!(t["hash"], o.hash.as_str(), "phase {}", o.phase);
        }
    }
}

#[test]
fn signed_policies_equal_systemd_measure_sign() {
    let tpm = Swtpm::tcp().unwrap();
    let inp = inputs(true);
    let id = SigningIdentity::generate("pcr").unwrap();
    let key = inp.dir.path().join("pcr.key");
    let public = inp.dir.path().join("pcr.pub");
    std::fs::write(&key, id.key_pem().unwrap()).unwrap();
    std::fs::write(&public, id.public_key_pem().unwrap()).unwrap();

    let mut args = vec![
        "sign".to_owned(),
        "--bank=sha256".into(),
        "--json=short".into(),
        format!("--private-key={}", key.display()),
        format!("--public-key={}", public.display()),
        format!("--tpm2-device={}", tpm.tcti().unwrap()),
    ];
    args.extend(measure_args(&inp));
    let theirs: pcr::PcrSig = serde_json::from_value(run(&args)).unwrap();

    let private = osimage::sign::load_key(&key).unwrap();
    let ours = sign::sign_phases(&sections(&inp), &pcr::DEFAULT_PHASES, &private).unwrap();
    assert_eq!(ours.sha256.len(), 4);
    for (t, o) in theirs.sha256.iter().zip(&ours.sha256) {
        assert_eq!(t.pcrs, [11]);
        assert_eq!(t.pol, o.pol, "policy digest");
        assert_eq!(t.pkfp, o.pkfp, "public key fingerprint");
        // PKCS#1 v1.5 is deterministic: the very same signature bytes.
        assert_eq!(t.sig, o.sig, "signature");
        assert!(sign::verify(o, &id.rsa_public_key().unwrap()));
    }
    // A signature does not verify for another policy.
    let mut forged = ours.sha256[0].clone();
    forged.pol = ours.sha256[1].pol.clone();
    assert!(!sign::verify(&forged, &id.rsa_public_key().unwrap()));
}
