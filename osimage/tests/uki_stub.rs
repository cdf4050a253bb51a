//! UKIs built on Debian's systemd stub, read back by objdump and a PE parser.

use std::process::Command;

use object::read::pe::PeFile64;
use object::{Object, ObjectSection};
use osimage::uki::{self, UkiSpec, pe};
use tessera_rig::Artifacts;

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
    let out = Command::new("objdump")
        .arg("-h")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
