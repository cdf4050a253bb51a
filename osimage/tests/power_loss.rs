//! The power-loss proof: an update is cut off after every single write it makes, and
//! after each cut the disk must still boot a whole version, keep the running one
//! byte for byte, show no half-labelled slot, and finish when the update runs again.

mod common;

use common::{Options, build_disk, bump_version, fixture};
use osimage::boot::entry;
use osimage::boot::esp::{self, EspLocation, UKI_DIR};
use osimage::disk::{CountingDisk, CrashDisk, Disk, MemDisk, read_gpt};
use osimage::sign::{SigningIdentity, load_cert};
use osimage::update::apply::{self, Options as UpdateOptions};
use osimage::update::catalog::{Decision, Policy};
use osimage::update::{publish, slots, source::Source};

struct World {
    disk: MemDisk,
    source: Source,
    opts: UpdateOptions,
    _fx: common::Fixture,
}

fn world() -> World {
    let fx = fixture(Options {
        kernel: Some(vec![0x4b; 6000]),
        esp_size: Some("34M".into()),
        ..Options::default()
    });
    let (v1, _) = build_disk(&fx);
    let device = fx.dir.path().join("device.img");
    std::fs::rename(&v1, &device).unwrap();
    bump_version(&fx, "2.0");
    let (v2, _) = build_disk(&fx);
    let d = fx.dir.path();
    let id = SigningIdentity::load(&d.join("keys/verity.key"), &d.join("keys/verity.crt")).unwrap();
    publish::publish(&v2, &d.join("publish"), &id).unwrap();

    let mut bytes = std::fs::read(&device).unwrap();
    bytes.resize(bytes.len() + (4 << 20), 0);
    let mut disk = MemDisk(bytes);
    slots::add_empty(&mut disk, 1 << 20, 1 << 20, 1 << 20).unwrap();
    let cert = load_cert(&d.join("keys/verity.crt")).unwrap();
    World {
        disk,
        source: Source::Dir(d.join("publish")),
        opts: UpdateOptions {
            name: "tessera".into(),
            vendor_cert: cert.clone(),
            verity_cert: cert,
            booted: Some("1.0".into()),
            policy: Policy::default(),
            tries: 3,
            instances_max: 2,
        },
        _fx: fx,
    }
}

/// What must survive: the running version's partitions and UKI.
struct Running {
    parts: Vec<(u64, Vec<u8>)>,
    uki: Vec<u8>,
}

fn esp_at(disk: &dyn Disk) -> EspLocation {
    let gpt = read_gpt(disk).unwrap();
    EspLocation::of(&gpt.partitions[0], gpt.sector_size)
}

fn snapshot(disk: &mut MemDisk) -> Running {
    let gpt = read_gpt(disk).unwrap();
    let parts = gpt.partitions[1..4]
        .iter()
        .map(|p| {
            let (o, l) = (p.first_lba * 512, p.sectors() * 512);
            (o, disk.0[o as usize..(o + l) as usize].to_vec())
        })
        .collect();
    let at = esp_at(disk);
    let uki = esp::read_file(disk, at, "EFI/Linux/tessera_1.0.efi")
        .unwrap()
        .unwrap();
    Running { parts, uki }
}

/// The checks after a crash; returns which version systemd-boot would start.
fn check_after_crash(
    disk: &mut MemDisk,
    running: &Running,
    opts: &UpdateOptions,
    published_uki: &[u8],
    n: usize,
) -> String {
    for (o, bytes) in &running.parts {
        assert!(
            &disk.0[*o as usize..*o as usize + bytes.len()] == bytes.as_slice(),
            "crash at write {n}: v1 partition changed"
        );
    }
    let gpt = read_gpt(disk).unwrap_or_else(|e| panic!("crash at write {n}: no readable GPT: {e}"));
    for s in slots::find(&gpt, "tessera") {
        let labels: Vec<&str> = [s.usr_index, s.verity_index, s.sig_index]
            .iter()
            .map(|&i| gpt.partitions[i].label.as_str())
            .collect();
        assert!(
            labels.iter().all(|l| *l == labels[0]),
            "crash at write {n}: half-labelled slot {labels:?}"
        );
    }
    let at = esp_at(disk);
    let uki = esp::read_file(disk, at, "EFI/Linux/tessera_1.0.efi").unwrap();
    assert!(
        uki.as_deref() == Some(running.uki.as_slice()),
        "crash at write {n}: v1 UKI changed"
    );
    let entries = esp::entries(disk, at).unwrap();
    let pick = entry::select(&entries, None, None)
        .unwrap_or_else(|| panic!("crash at write {n}: nothing to boot"));
    let chosen = entries[pick].clone();
    if chosen.version() == "2.0" {
        // Chosen only if complete: its slot is labelled and verifies, and its UKI is
        // the published one.
        let slot = slots::find(&gpt, "tessera")
            .into_iter()
            .find(|s| s.version.as_deref() == Some("2.0"))
            .unwrap_or_else(|| panic!("crash at write {n}: v2 entry without a v2 slot"));
        apply::verify_slot(disk, &gpt, &slot, "2.0", &opts.verity_cert).unwrap_or_else(|e| {
            panic!("crash at write {n}: selectable v2 slot does not verify: {e}")
        });
        let uki = esp::read_file(disk, at, &format!("{UKI_DIR}/{}", chosen.file_name))
            .unwrap()
            .unwrap();
        assert!(
            uki == published_uki,
            "crash at write {n}: selectable v2 UKI is incomplete"
        );
    }
    chosen.version().to_owned()
}

#[test]
fn an_update_cut_off_after_every_write_still_boots_and_then_finishes() {
    let w = world();
    let Source::Dir(published) = &w.source else {
        unreachable!("a directory source")
    };
    let published_uki = std::fs::read(published.join("tessera_2.0.efi")).unwrap();
    let mut base = w.disk.clone();
    let running = snapshot(&mut base);

    // How many writes a whole update makes.
    let mut counting = CountingDisk {
        inner: base.clone(),
        writes: 0,
    };
    let rep = apply::apply(&mut counting, &w.source, &w.opts).unwrap();
    assert_eq!(rep.activated.as_deref(), Some("tessera_2.0+3.efi"));
    let total = counting.writes;
    assert!(total > 50, "suspiciously few writes: {total}");

    let mut booted_old = 0;
    let mut booted_new = 0;
    for n in 0..total {
        let mut crash = CrashDisk::new(base.clone(), n);
        let result = apply::apply(&mut crash, &w.source, &w.opts);
        assert!(
            result.is_err(),
            "write budget {n} of {total} must cut the update short"
        );
        let mut after = crash.inner;
        match check_after_crash(&mut after, &running, &w.opts, &published_uki, n).as_str() {
            "1.0" => booted_old += 1,
            _ => booted_new += 1,
        }
        // Power back: the update runs again and finishes.
        let rep = apply::apply(&mut after, &w.source, &w.opts)
            .unwrap_or_else(|e| panic!("crash at write {n}: re-running the update failed: {e}"));
        match rep.decision {
            Decision::Install { .. } | Decision::UpToDate { .. } => {}
            other => panic!("crash at write {n}: re-run decided {other:?}"),
        }
        let at = esp_at(&after);
        let entries = esp::entries(&mut after, at).unwrap();
        let pick = entry::select(&entries, None, None).unwrap();
        assert_eq!(
            entries[pick].version(),
            "2.0",
            "crash at write {n}: re-run did not activate v2"
        );
        check_after_crash(&mut after, &running, &w.opts, &published_uki, n);
    }
    println!(
        "power-loss proof: {total} crash points tested; after the crash {booted_old} boot 1.0, {booted_new} boot 2.0; all finished on re-run"
    );
    eprintln!("power-loss proof: {total} crash points tested, all passed");
}
