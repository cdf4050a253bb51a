//! Boot counting against systemd-boot itself, and `osimage boot` on images and on a
//! mounted ESP with loader EFI variables.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Options, build_disk, fixture, osimage};
use osimage::boot::BootEntry;
use osimage::boot::esp::{self, EspLocation, UKI_DIR};
use osimage::disk::{FileDisk, read_gpt};
use tessera_rig::initrd::BusyboxInitrd;
use tessera_rig::{Artifacts, Vm, VmConfig};

fn build_image(opts: Options) -> (common::Fixture, std::path::PathBuf) {
    let fx = fixture(opts);
    let (img, _) = build_disk(&fx);
    (fx, img)
}

/// An image whose initrd runs `script` and powers off.
fn image_running(script: &str) -> (common::Fixture, std::path::PathBuf) {
    let art = Artifacts::ensure().unwrap();
    let initrd = BusyboxInitrd::new().script(script).build(&art).unwrap();
    build_image(Options {
        initrd: Some(initrd),
        cmdline: "console=ttyS0,115200 panic=-1".into(),
        ..Options::default()
    })
}

fn esp_of(img: &Path) -> (FileDisk, EspLocation) {
    let disk = FileDisk::open(img).unwrap();
    let gpt = read_gpt(&disk).unwrap();
    let at = EspLocation::of(&gpt.partitions[0], gpt.sector_size);
    (disk, at)
}

fn status(img: &Path) -> serde_json::Value {
    let out = common::run_ok(
        osimage()
            .args(["--json", "boot", "status", "--image"])
            .arg(img),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn systemd_boot_counts_down_the_way_our_model_predicts() {
    let (_fx, img) = image_running("echo TESSERA-COUNTED-BOOT");
    let (mut disk, at) = esp_of(&img);
    esp::rename(
        &mut disk,
        at,
        UKI_DIR,
        "tessera_1.0.efi",
        "tessera_1.0+3.efi",
    )
    .unwrap();
    drop(disk);
    let before = BootEntry::parse("tessera_1.0+3.efi").unwrap();
    assert_eq!(status(&img)["entries"][0]["state"], "indeterminate");

    let mut vm = Vm::start(&VmConfig::firmware(&img)).unwrap();
    vm.wait_for_line("TESSERA-COUNTED-BOOT", Duration::from_secs(300))
        .unwrap();
    let serial = vm.serial();
    assert!(vm.wait_exit(Duration::from_secs(60)));
    drop(vm);

    // systemd-boot renamed the file before starting it, exactly as after_try() says.
    let (mut disk, at) = esp_of(&img);
    let names = esp::list(&mut disk, at, UKI_DIR).unwrap();
    assert_eq!(
        names,
        [before.after_try().unwrap()],
        "serial:\n{}",
        &serial[..serial.len().min(3000)]
    );
    assert_eq!(names, ["tessera_1.0+2-1.efi"]);
    drop(disk);

    // Blessing drops the counter.
    common::run_ok(
        osimage()
            .args(["boot", "bless", "--entry", "tessera_1.0+2-1.efi", "--image"])
            .arg(&img),
    );
    let st = status(&img);
    assert_eq!(st["entries"][0]["fileName"], "tessera_1.0.efi");
    assert_eq!(st["entries"][0]["state"], "good");
}

#[test]
fn status_orders_entries_like_systemd_boot_and_marks_bad_ones() {
    let (_fx, img) = build_image(Options::default());
    let (mut disk, at) = esp_of(&img);
    esp::install_file(&mut disk, at, UKI_DIR, "tessera_2.0+2-1.efi", b"uki 2").unwrap();
    esp::install_file(&mut disk, at, UKI_DIR, "tessera_3.0+0-3.efi", b"uki 3").unwrap();
    drop(disk);
    let st = status(&img);
    let order: Vec<&str> = st["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["fileName"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "tessera_2.0+2-1.efi",
            "tessera_1.0.efi",
            "tessera_3.0+0-3.efi"
        ]
    );
    let states: Vec<&str> = st["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["indeterminate", "good", "bad"]);
    assert_eq!(st["entries"][0]["default"], true);
    assert_eq!(st["bootedSource"], "inferred");

    common::run_ok(
        osimage()
            .args(["boot", "mark-bad", "tessera_2.0", "--image"])
            .arg(&img),
    );
    let st = status(&img);
    assert_eq!(st["entries"][0]["fileName"], "tessera_1.0.efi");
    // set-default is about the machine's EFI variables, not an image.
    let out = osimage()
        .args(["boot", "set-default", "tessera_1.0", "--image"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn bless_on_a_mounted_esp_uses_loader_boot_count_path() {
    let esp_dir = tempfile::tempdir().unwrap();
    let vars = tempfile::tempdir().unwrap();
    let linux = esp_dir.path().join("EFI/Linux");
    std::fs::create_dir_all(&linux).unwrap();
    std::fs::write(linux.join("tessera_2+2-1.efi"), "x").unwrap();
    std::fs::write(linux.join("tessera_1.efi"), "y").unwrap();
    let v = osimage::boot::efivars::EfiVars::new(vars.path());
    v.set_string(
        "LoaderBootCountPath",
        osimage::boot::efivars::LOADER_VENDOR,
        osimage::boot::efivars::ATTR_BS_RT,
        "\\EFI\\Linux\\tessera_2+2-1.efi",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = common::run_ok(
            osimage()
                .args(args)
                .arg("--esp")
                .arg(esp_dir.path())
                .env("OSIMAGE_EFIVARFS", vars.path()),
        );
        out.stdout
    };
    let st: serde_json::Value =
        serde_json::from_slice(&run(&["--json", "boot", "status"])).unwrap();
    assert_eq!(st["booted"], "tessera_2+2-1.efi");
    assert_eq!(st["bootedSource"], "loader-boot-count-path");
    run(&["boot", "bless"]);
    assert!(linux.join("tessera_2.efi").exists());
    run(&["boot", "set-default", "tessera_1"]);
    let raw = std::fs::read(vars.path().join(format!(
        "LoaderEntryDefault-{}",
        osimage::boot::efivars::LOADER_VENDOR
    )))
    .unwrap();
    assert_eq!(osimage::boot::efivars::decode_utf16(&raw[4..]), "tessera_1");
    let _ = Command::new("true").status();
}

/// Without efivarfs, `factory-reset request` leaves a one-shot Type #1 entry.
/// systemd-boot must start it first, once, with the UKI's command line plus
/// systemd.factory_reset=yes, and on the next boot go back to the UKI itself.
#[test]
fn a_oneshot_reset_entry_boots_once_with_the_request() {
    let (_fx, img) = image_running("echo \"TESSERA-CMDLINE: $(cat /proc/cmdline)\"");
    let reset = |args: &[&str]| -> serde_json::Value {
        let out = common::run_ok(
            osimage()
                .args(["--json", "factory-reset"])
                .args(args)
                .args(["--efivars", "/nonexistent/efivars", "--image"])
                .arg(&img),
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(reset(&["request"])["oneshot_entry"], "pending");

    let boot = || {
        let mut vm = Vm::start(&VmConfig::firmware(&img)).unwrap();
        let line = vm
            .wait_for_line("TESSERA-CMDLINE:", Duration::from_secs(300))
            .unwrap();
        assert!(
            vm.wait_exit(Duration::from_secs(60)),
            "guest must power off"
        );
        line
    };
    let first = boot();
    assert!(first.contains("systemd.factory_reset=yes"), "{first}");
    assert!(
        first.contains("usrhash="),
        "the UKI's own command line is kept: {first}"
    );
    let st = reset(&["status"]);
    assert_eq!(st["oneshot_entry"], "spent", "{st}");
    assert_eq!(st["requested"], false);
    let second = boot();
    assert!(!second.contains("systemd.factory_reset"), "{second}");
    assert!(second.contains("usrhash="), "{second}");

    reset(&["cancel"]);
    let (mut disk, at) = esp_of(&img);
    assert!(
        esp::list(&mut disk, at, "loader/entries")
            .unwrap()
            .is_empty()
    );
}
