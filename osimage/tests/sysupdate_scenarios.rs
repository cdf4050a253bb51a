//! The scenario of systemd's sysupdate test, written for osimage on image files:
//! v1 installs; v2 installs beside it; v3 replaces v1 and v1's files are gone; an
//! incomplete v4 is not offered; v5 installs, skipping v4; a v5 slot damaged on the
//! device is detected and repaired by running the update again.

mod common;

use std::path::Path;

use common::{Fixture, Options, build_disk, bump_version, fixture};
use osimage::boot::entry;
use osimage::boot::esp::{self, EspLocation};
use osimage::disk::{Disk, FileDisk, read_gpt};
use osimage::sign::{SigningIdentity, load_cert};
use osimage::update::apply::{self, Options as UpdateOptions, Report};
use osimage::update::catalog::{Decision, Policy};
use osimage::update::{publish, slots, source::Source};

fn publish_version(fx: &Fixture, version: &str, dir: &Path) {
    bump_version(fx, version);
    let (img, _) = build_disk(fx);
    let d = fx.dir.path();
    let id = SigningIdentity::load(&d.join("keys/verity.key"), &d.join("keys/verity.crt")).unwrap();
    publish::publish(&img, dir, &id).unwrap();
}

fn labels(disk: &FileDisk) -> Vec<String> {
    let gpt = read_gpt(disk).unwrap();
    slots::find(&gpt, "tessera")
        .into_iter()
        .map(|s| s.version.unwrap_or_else(|| "_empty".into()))
        .collect()
}

fn ukis(disk: &mut FileDisk) -> Vec<String> {
    let gpt = read_gpt(disk).unwrap();
    let at = EspLocation::of(&gpt.partitions[0], gpt.sector_size);
    esp::list(disk, at, "EFI/Linux").unwrap()
}

fn newest_bootable(disk: &mut FileDisk) -> String {
    let gpt = read_gpt(disk).unwrap();
    let at = EspLocation::of(&gpt.partitions[0], gpt.sector_size);
    let entries = esp::entries(disk, at).unwrap();
    entries[entry::select(&entries, None, None).unwrap()]
        .version()
        .to_owned()
}

fn scenario(sector_size: u32) {
    let fx = fixture(Options {
        sector_size,
        kernel: Some(vec![0x4b; 6000]),
        ..Options::default()
    });
    let d = fx.dir.path();
    // The device: the image's ESP and two empty slots (as firstboot leaves it).
    let (img, _) = build_disk(&fx);
    let device = d.join("device.img");
    std::fs::rename(&img, &device).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&device)
        .unwrap();
    f.set_len(f.metadata().unwrap().len() + (8 << 20)).unwrap();
    drop(f);
    let mut disk = FileDisk::open(&device).unwrap();
    let gpt = read_gpt(&disk).unwrap();
    let a = slots::find(&gpt, "tessera").remove(0);
    let at = EspLocation::of(&gpt.partitions[0], gpt.sector_size);
    esp::remove(&mut disk, at, "EFI/Linux", "tessera_1.0.efi").unwrap();
    slots::relabel(&mut disk, &a, slots::EMPTY, None).unwrap();
    slots::add_empty(&mut disk, a.usr_size, a.verity_size, a.sig_size).unwrap();
    assert_eq!(labels(&disk), ["_empty", "_empty"]);
    assert!(ukis(&mut disk).is_empty());

    let publish_dir = d.join("publish");
    let cert = load_cert(&d.join("keys/verity.crt")).unwrap();
    let mut opts = UpdateOptions {
        name: "tessera".into(),
        vendor_cert: cert.clone(),
        verity_cert: cert,
        booted: None,
        policy: Policy::default(),
        tries: 3,
        instances_max: 2,
    };
    let source = Source::Dir(publish_dir.clone());
    let run = |disk: &mut FileDisk, opts: &UpdateOptions| -> Report {
        apply::apply(disk, &source, opts).unwrap()
    };

    // 1. v1 installs.
    publish_version(&fx, "1", &publish_dir);
    let r = run(&mut disk, &opts);
    assert_eq!(r.activated.as_deref(), Some("tessera_1+3.efi"));
    assert_eq!(labels(&disk), ["1", "_empty"]);
    opts.booted = Some("1".into());

    // 2. v2 installs alongside it.
    publish_version(&fx, "2", &publish_dir);
    run(&mut disk, &opts);
    assert_eq!(labels(&disk), ["1", "2"]);
    assert_eq!(ukis(&mut disk), ["tessera_1+3.efi", "tessera_2+3.efi"]);
    assert_eq!(newest_bootable(&mut disk), "2");
    opts.booted = Some("2".into());

    // 3. v3 replaces v1, and v1's files are gone.
    publish_version(&fx, "3", &publish_dir);
    let r = run(&mut disk, &opts);
    assert!(
        matches!(&r.decision, Decision::Install { replaces: Some(v), .. } if v == "1"),
        "{:?}",
        r.decision
    );
    assert_eq!(labels(&disk), ["3", "2"]);
    assert_eq!(ukis(&mut disk), ["tessera_2+3.efi", "tessera_3+3.efi"]);
    opts.booted = Some("3".into());

    // 4. A v4 incomplete on the server is not offered.
    publish_version(&fx, "4", &publish_dir);
    std::fs::remove_file(publish_dir.join("tessera_4.efi")).unwrap();
    let r = apply::check(&disk, &source, &opts).unwrap();
    let v4 = r.offered.iter().find(|o| o.version == "4").unwrap();
    assert_eq!(v4.missing, ["efi"]);
    assert!(
        matches!(r.decision, Decision::UpToDate { .. }),
        "{:?}",
        r.decision
    );

    // 5. v5 installs, skipping v4, into the slot that is not booted.
    publish_version(&fx, "5", &publish_dir);
    let r = run(&mut disk, &opts);
    assert!(
        matches!(&r.decision, Decision::Install { version, replaces: Some(old), .. } if version == "5" && old == "2")
    );
    assert_eq!(labels(&disk), ["3", "5"]);
    assert_eq!(ukis(&mut disk), ["tessera_3+3.efi", "tessera_5+3.efi"]);
    assert_eq!(newest_bootable(&mut disk), "5");

    // 6. A v5 slot damaged on the device is found and rewritten.
    let gpt = read_gpt(&disk).unwrap();
    let s5 = slots::find(&gpt, "tessera")
        .into_iter()
        .find(|s| s.version.as_deref() == Some("5"))
        .unwrap();
    let off = gpt.partitions[s5.usr_index].first_lba * gpt.sector_size as u64;
    let mut byte = [0u8; 1];
    disk.read_at(off + 2048, &mut byte).unwrap();
    disk.write_at(off + 2048, &[byte[0] ^ 0xff]).unwrap();
    assert!(apply::verify_slot(&disk, &gpt, &s5, "5", &opts.verity_cert).is_err());
    let r = run(&mut disk, &opts);
    assert_eq!(
        r.activated.as_deref(),
        Some("tessera_5+3.efi"),
        "{:?}",
        r.decision
    );
    let gpt = read_gpt(&disk).unwrap();
    apply::verify_slot(&disk, &gpt, &s5, "5", &opts.verity_cert).unwrap();
    assert_eq!(labels(&disk), ["3", "5"]);
    // And the running v3 was never touched.
    assert!(ukis(&mut disk).contains(&"tessera_3+3.efi".to_owned()));
}

#[test]
fn sysupdate_scenario_on_512_byte_sectors() {
    scenario(512);
}

#[test]
fn sysupdate_scenario_on_4096_byte_sectors() {
    scenario(4096);
}
