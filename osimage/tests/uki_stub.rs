//! UKIs built on Debian's systemd stub, read back by objdump and a PE parser.

use std::process::Command;

use object::read::pe::PeFile64;
use object::{Object, ObjectSection};
use osimage::uki::{self, UkiSpec, pe};
use tessera_rig::Artifacts;

mod common;

fn spec(art: &Artifacts) -> UkiSpec {
    let linux = std::fs::read(&art.vmlinuz).unwrap();
    UkiSpec {
        osrel: b"ID=tessera\nVERSION_ID=1.0\n".to_vec(),
        cmdline: "console=ttyS0 quiet".into(),
        uname: uki::kernel_release(&linux),
        splash: None,
        pcrpkey: Some(b"-----BEGIN PUBLIC KEY-----\n...\n".to_vec()),
        pcrsig: None,
        initrd: vec![0x5a; 100_000],
        linux,
    }
}

#[test]
fn uki_sections_are_readable_by_objdump_and_a_pe_parser() {
    let art = Artifacts::ensure().unwrap();
    let spec = spec(&art);
    assert_eq!(spec.uname.as_deref(), Some(art.kernel_release.as_str()));
    let image = spec.build_from_file(&art.efi_stub).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.efi");
    std::fs::write(&path, &image).unwrap();
    let out = common::run_ok(Command::new("objdump").arg("-h").arg(&path));
    let listing = String::from_utf8_lossy(&out.stdout);
    for name in [
        ".osrel", ".cmdline", ".uname", ".pcrpkey", ".initrd", ".linux", ".sdmagic",
    ] {
        assert!(
            listing.contains(name),
            "objdump -h lacks {name}:\n{listing}"
        );
    }

    let pe = PeFile64::parse(&*image).expect("a PE parser accepts the UKI");
    let data = |name: &str| {
        let s = pe
            .section_by_name(name)
            .unwrap_or_else(|| panic!("no {name}"));
        s.data().unwrap()[..s.size() as usize].to_vec()
    };
    assert_eq!(data(".osrel"), spec.osrel);
    assert_eq!(data(".cmdline"), b"console=ttyS0 quiet");
    assert_eq!(&data(".linux")[..spec.linux.len()], &spec.linux[..]);
    assert_eq!(
        pe::section_data(&image, ".initrd").unwrap().unwrap(),
        &spec.initrd[..]
    );

    // Headers are consistent: SizeOfImage covers the last section, and the checksum
    // is what CheckSumMappedFile computes.
    let layout = pe::PeLayout::parse(&image).unwrap();
    let last = layout.sections.last().unwrap();
    assert_eq!(last.name, ".linux");
    let size_of_image = u32::from_le_bytes(image[layout.optional + 56..][..4].try_into().unwrap());
    assert!(size_of_image as u64 >= last.virtual_address as u64 + last.virtual_size as u64);
    assert_eq!(size_of_image % layout.section_alignment, 0);
    let stored = u32::from_le_bytes(image[layout.optional + 64..][..4].try_into().unwrap());
    assert_eq!(stored, pe::checksum(&image, layout.optional + 64));
    for w in layout.sections.windows(2) {
        assert!(
            w[0].virtual_address as u64 + w[0].virtual_size as u64 <= w[1].virtual_address as u64,
            "sections overlap: {w:?}"
        );
    }

    // Building twice gives the same bytes.
    assert_eq!(spec.build_from_file(&art.efi_stub).unwrap(), image);
}

#[test]
fn a_stub_that_is_not_a_pe_is_rejected_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("linuxx64.efi.stub");
    std::fs::write(&bogus, b"#!/bin/sh\n").unwrap();
    let err = UkiSpec::default().build_from_file(&bogus).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("linuxx64.efi.stub") && msg.contains("not a PE image"),
        "{msg}"
    );
}

/// `osimage uki` with a splash and a PCR key: objdump lists every section, `.pcrpkey`
/// is the key's public half, and each `.pcrsig` entry verifies with it and predicts
/// what `osimage pcr predict`'s library computes over the UKI's own sections.
#[test]
fn the_uki_command_adds_splash_pcrpkey_and_a_verifiable_pcrsig() {
    let art = Artifacts::ensure().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let id = osimage::sign::SigningIdentity::generate("pcr").unwrap();
    std::fs::write(d.join("pcr.key"), id.key_pem().unwrap()).unwrap();
    std::fs::write(d.join("os-release"), "ID=tessera\n").unwrap();
    std::fs::write(d.join("initrd"), vec![0x5a; 4096]).unwrap();
    let splash = common::SPLASH_BMP;
    std::fs::write(d.join("splash.bmp"), splash).unwrap();
    // `osimage uki` over the Debian stub and kernel, with `pcr_key`, into `output`.
    let uki = |pcr_key: &str, output: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_osimage"));
        c.arg("uki")
            .arg("--stub")
            .arg(&art.efi_stub)
            .arg("--kernel")
            .arg(&art.vmlinuz)
            .arg("--os-release")
            .arg(d.join("os-release"))
            .arg("--pcr-key")
            .arg(d.join(pcr_key))
            .arg("-o")
            .arg(d.join(output));
        c
    };
    common::run_ok(
        uki("pcr.key", "t.efi")
            .arg("--initrd")
            .arg(d.join("initrd"))
            .args(["--cmdline", "console=ttyS0"])
            .arg("--splash")
            .arg(d.join("splash.bmp")),
    );
    let image = std::fs::read(d.join("t.efi")).unwrap();
    let listing = common::run_ok(Command::new("objdump").arg("-h").arg(d.join("t.efi")));
    let listing = String::from_utf8_lossy(&listing.stdout);
    for name in [".splash", ".pcrpkey", ".pcrsig", ".cmdline", ".linux"] {
        assert!(
            listing.contains(name),
            "objdump -h lacks {name}:\n{listing}"
        );
    }
    let section = |name: &str| pe::section_data(&image, name).unwrap().unwrap().to_vec();
    assert_eq!(section(".splash"), splash);
    assert_eq!(
        section(".pcrpkey"),
        id.public_key_pem().unwrap().into_bytes()
    );
    let sig: osimage::pcr::PcrSig = serde_json::from_slice(&section(".pcrsig")).unwrap();
    assert_eq!(sig.sha256.len(), osimage::pcr::DEFAULT_PHASES.len());
    let measured: Vec<(&str, Vec<u8>)> = [
        ".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".pcrpkey",
    ]
    .into_iter()
    .map(|n| (n, section(n)))
    .collect();
    let refs: Vec<(&str, &[u8])> = measured.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let predicted = osimage::pcr::predict(&refs, &osimage::pcr::DEFAULT_PHASES);
    for (entry, p) in sig.sha256.iter().zip(&predicted) {
        assert!(
            osimage::pcr::sign::verify(entry, &id.rsa_public_key().unwrap()),
            "a .pcrsig entry does not verify with the key"
        );
        assert_eq!(entry.pcrs, [11]);
        // The signed policy is the one for the PCR 11 value predicted from the
        // sections that are in the file.
        let value: [u8; 32] = hex::decode(&p.hash).unwrap().try_into().unwrap();
        assert_eq!(
            entry.pol,
            hex::encode(osimage::pcr::policy_pcr_digest(&value)),
            "phase {}",
            p.phase
        );
    }
    // `osimage pcr predict` over the file gives what systemd-measure calculates from
    // the same sections, phase by phase.
    let out = common::run_ok(
        Command::new(env!("CARGO_BIN_EXE_osimage"))
            .args(["--json", "pcr", "predict", "--uki"])
            .arg(d.join("t.efi")),
    );
    let ours: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut measure = Command::new("/lib/systemd/systemd-measure");
    measure.args(["calculate", "--bank=sha256", "--json=short"]);
    for (name, bytes) in &measured {
        let file = d.join(format!("section{name}"));
        std::fs::write(&file, bytes).unwrap();
        measure.arg(format!("--{}={}", &name[1..], file.display()));
    }
    // The 252 stub measures no .uname, and systemd-measure 252 takes none.
    let theirs: serde_json::Value =
        serde_json::from_slice(&common::run_ok(&mut measure).stdout).unwrap();
    let theirs = theirs["sha256"].as_array().unwrap();
    assert_eq!(theirs.len(), osimage::pcr::DEFAULT_PHASES.len());
    for t in theirs {
        let o = ours["sha256"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["phase"] == t["phase"])
            .unwrap_or_else(|| panic!("no phase {} in {ours}", t["phase"]));
        assert_eq!(o["hash"], t["hash"], "phase {}", t["phase"]);
    }

    // An EC key cannot sign PCR policies for systemd 252: refused, with why.
    let ec = osimage::sign::SigningIdentity::generate_with("ec", osimage::sign::KeyAlgorithm::P256)
        .unwrap();
    std::fs::write(d.join("ec.key"), ec.key_pem().unwrap()).unwrap();
    let out = uki("ec.key", "ec.efi").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ec.key") && stderr.contains("is an EC P-256 key"),
        "{stderr}"
    );
    assert!(!d.join("ec.efi").exists());

    // A key that is not a key fails before anything is written.
    std::fs::write(d.join("bad.key"), "not a key").unwrap();
    let out = uki("bad.key", "bad.efi").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.key"));
    assert!(!d.join("bad.efi").exists());
}
