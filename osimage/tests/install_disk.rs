//! `osimage install` onto empty disks and disks that hold other systems.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Options, build_disk, fixture, osimage, run_ok};
use osimage::boot::esp::{self, EspLocation};
use osimage::disk::{FileDisk, read_gpt};

fn install(image: &Path, target: &Path, extra: &[&str]) -> std::process::Output {
    osimage()
        .args(["--json", "install", "--image"])
        .arg(image)
        .arg("--target")
        .arg(target)
        .args(extra)
        .output()
        .unwrap()
}

fn blank(path: &Path, size: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
}

/// Partitions `target` from an sfdisk script, as another OS's installer would.
fn sfdisk(target: &Path, script: &str) {
    let mut child = Command::new("sfdisk")
        .arg("--quiet")
        .arg(target)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
}

/// Writes a FAT image at `start_sector` (512-byte sectors) of `target`.
fn put_fat(target: &Path, start_sector: usize, fat: &[u8]) -> Vec<u8> {
    let mut bytes = std::fs::read(target).unwrap();
    bytes[start_sector * 512..start_sector * 512 + fat.len()].copy_from_slice(fat);
    std::fs::write(target, &bytes).unwrap();
    bytes
}

fn sha(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

#[test]
fn onto_an_empty_disk_it_makes_a_gpt_and_the_disk_boots() {
    let art = tessera_rig::Artifacts::ensure().unwrap();
    let initrd = tessera_rig::initrd::BusyboxInitrd::new()
        .script("echo TESSERA-INSTALLED-BOOT")
        .build(&art)
        .unwrap();
    let fx = fixture(Options {
        initrd: Some(initrd),
        cmdline: "console=ttyS0,115200 panic=-1".into(),
        ..Options::default()
    });
    let (img, rep) = build_disk(&fx);
    let target = fx.dir.path().join("target.img");
    blank(&target, 256 << 20);

    // A dry run plans and writes nothing.
    let before = sha(&target);
    let out = run_ok(
        osimage()
            .args(["--json", "install", "--dry-run", "--image"])
            .arg(&img)
            .arg("--target")
            .arg(&target),
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["newTable"], true);
    assert_eq!(plan["uki"], "tessera_1.0+3.efi");
    assert_eq!(sha(&target), before);

    let out = install(&img, &target, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump =
        String::from_utf8(run_ok(Command::new("sfdisk").arg("-d").arg(&target)).stdout).unwrap();
    assert!(dump.contains("label: gpt"), "{dump}");
    let dissect = common::dissect(&target);
    let usr = common::dissected(&dissect, "usr");
    let root = rep["rootHash"].as_str().unwrap();
    assert_eq!(
        usr["partition_uuid"].as_str().unwrap().replace('-', ""),
        root[..32]
    );

    let mut vm = tessera_rig::Vm::start(&tessera_rig::VmConfig::firmware(&target)).unwrap();
    vm.wait_for_line("TESSERA-INSTALLED-BOOT", Duration::from_secs(300))
        .unwrap();
    assert!(vm.wait_exit(Duration::from_secs(60)));
}

#[test]
fn beside_another_system_nothing_of_it_changes() {
    let fx = fixture(Options::default());
    let (img, _) = build_disk(&fx);
    let d = fx.dir.path();
    let target = d.join("shared.img");
    blank(&target, 512 << 20);
    // Another OS: an ESP with its own boot loader and settings, and a data partition.
    let script = "label: gpt\nstart=2048, size=69632, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=71680, size=204800, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n";
    sfdisk(&target, script);
    let files = vec![
        (
            "EFI/BOOT/BOOTX64.EFI".to_owned(),
            b"someone else's loader".to_vec(),
        ),
        ("loader/loader.conf".to_owned(), b"timeout 10\n".to_vec()),
    ];
    let fat = osimage::esp::build(69632 * 512, 512, 7, "ESP", &files).unwrap();
    let mut bytes = put_fat(&target, 2048, &fat);
    for (i, b) in bytes[71680 * 512..(71680 + 204800) * 512]
        .iter_mut()
        .enumerate()
    {
        *b = (i % 251) as u8;
    }
    std::fs::write(&target, &bytes).unwrap();
    let other_before = bytes[71680 * 512..(71680 + 204800) * 512].to_vec();

    let out = install(&img, &target, &["--tries", "5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["newTable"], false);
    assert_eq!(plan["reusesEsp"], true);

    let after = std::fs::read(&target).unwrap();
    assert!(
        after[71680 * 512..(71680 + 204800) * 512] == other_before[..],
        "the other system's data changed"
    );
    let mut disk = FileDisk::open(&target).unwrap();
    let gpt = read_gpt(&disk).unwrap();
    assert_eq!(gpt.partitions.len(), 5);
    assert_eq!(
        gpt.partitions[1].kind.to_string(),
        "0fc63daf-8483-4772-8e79-3d69d8477de4"
    );
    let at = EspLocation::of(&gpt.partitions[0], 512);
    assert_eq!(
        esp::read_file(&mut disk, at, "EFI/BOOT/BOOTX64.EFI")
            .unwrap()
            .unwrap(),
        b"someone else's loader"
    );
    assert!(
        esp::read_file(&mut disk, at, "EFI/systemd/systemd-bootx64.efi")
            .unwrap()
            .is_some()
    );
    let conf = esp::read_file(&mut disk, at, "loader/loader.conf")
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8(conf).unwrap(), "timeout 10\neditor no\n");
    assert_eq!(
        esp::list(&mut disk, at, "EFI/Linux").unwrap(),
        ["tessera_1.0+5.efi"]
    );
}

#[test]
fn a_full_esp_gets_an_xbootldr_and_a_small_disk_is_refused_untouched() {
    let fx = fixture(Options::default());
    let (img, _) = build_disk(&fx);
    let d = fx.dir.path();
    let target = d.join("fullesp.img");
    blank(&target, 256 << 20);
    let script = "label: gpt\nstart=2048, size=69632, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n";
    sfdisk(&target, script);
    let fat = osimage::esp::build(
        69632 * 512,
        512,
        7,
        "ESP",
        &[("big.bin".to_owned(), vec![1u8; 31 << 20])],
    )
    .unwrap();
    put_fat(&target, 2048, &fat);

    let out = install(&img, &target, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["bootPartition"], "xbootldr");
    common::dissected(&common::dissect(&target), "xbootldr");
    let st = run_ok(
        osimage()
            .args(["--json", "boot", "status", "--image"])
            .arg(&target),
    );
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["entries"][0]["fileName"], "tessera_1.0+3.efi");

    // Too small: a clear error, not a byte written.
    let small = d.join("small.img");
    blank(&small, 20 << 20);
    let before = sha(&small);
    let out = install(&img, &small, &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not enough free space"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sha(&small), before);
}

#[test]
fn a_disk_in_use_is_refused_without_force() {
    let fx = fixture(Options::default());
    let (img, _) = build_disk(&fx);
    let target = fx.dir.path().join("busy.img");
    blank(&target, 256 << 20);
    let out = run_ok(
        Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&target),
    );
    let dev = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let result = install(&img, &target, &[]);
    let _ = Command::new("losetup").arg("-d").arg(&dev).status();
    assert!(!result.status.success());
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(err.contains("in use") && err.contains("--force"), "{err}");
}
