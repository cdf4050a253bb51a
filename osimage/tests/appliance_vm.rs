//! The appliance end to end (issue 8), first boot and blessing: the image of
//! `config/appliance/` (a Debian /usr from mmdebstrap, a dracut initrd, made by
//! `osimage build`) boots in QEMU under OVMF with a swtpm vTPM, and every format
//! osimage wrote is read by the real consumer:
//! - systemd-boot picks the boot-counted UKI and counts the try;
//! - the initrd's systemd-veritysetup-generator sets up /usr from `usrhash=`;
//! - `osimage firstboot` (our initrd unit) creates root, home and swap as LUKS2
//!   bound to the vTPM and formats them through device-mapper;
//! - systemd-cryptsetup unlocks root through our `systemd-tpm2` token, with the
//!   UKI's signed PCR 11 policy and no passphrase;
//! - the hermetic /usr boots with an empty /etc and /var;
//! - `osimage boot bless` drops the counter after boot-complete.target.
//!
//! The console is driven like a person would: log in on the serial getty (root's
//! password comes from an SMBIOS credential that systemd-sysusers applies) and type.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tessera_rig::appliance::{self, ApplianceRoot, Binaries};
use tessera_rig::picture::Picture;
use tessera_rig::{Artifacts, Swtpm, Vm, VmConfig};

const PASSWORD: &str = "tessera";

fn binaries() -> Binaries {
    let osimage = PathBuf::from(env!("CARGO_BIN_EXE_osimage"));
    let tessera = osimage.with_file_name("tessera");
    assert!(
        tessera.is_file(),
        "{} is not built: run the workspace's tests (`cargo xtask test`)",
        tessera.display()
    );
    Binaries {
        tessera: Some(tessera),
        osimage,
    }
}

/// Runs `command` in the guest and returns its output; a non-zero exit fails.
fn sh(vm: &mut Vm, command: &str) -> String {
    let (out, rc) = vm.shell(command, Duration::from_secs(300)).unwrap();
    assert_eq!(rc, 0, "`{command}` failed in the guest:\n{out}");
    out
}

fn json(vm: &mut Vm, command: &str) -> Value {
    let out = sh(vm, command);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("`{command}`: {e}:\n{out}"))
}

fn build(work: &Path, version: &str) -> PathBuf {
    let art = Artifacts::ensure().unwrap();
    let app = ApplianceRoot::ensure(&art).unwrap();
    let bins = binaries();
    let definition = appliance::stage(&app, work, version, &bins, &[]).unwrap();
    let image = work.join(format!("tessera_{version}.img"));
    appliance::build_image(&bins.osimage, &definition, &image).unwrap();
    image
}

#[test]
fn first_boot_unlocks_root_through_the_tpm_token_and_blesses_the_uki() {
    let work = tempfile::tempdir().unwrap();
    let image = build(work.path(), "1.0");
    let disk = work.path().join("disk.img");
    appliance::make_disk(&image, &disk, 8 << 30).unwrap();

    let tpm = Swtpm::unix().unwrap();
    let mut vm = Vm::start(
        &VmConfig::firmware(&disk)
            .with_tpm(&tpm)
            .with_gpu(1280, 800)
            .with_credential("passwd.plaintext-password.root", PASSWORD)
            .with_typed_console(),
    )
    .unwrap();

    // In the initrd: firstboot made the volumes, sealed to the TPM.
    vm.wait_for_line(
        "encrypted partitions open with: TPM2 \\(signed PCR policy\\)",
        Duration::from_secs(900),
    )
    .unwrap();
    vm.login("root", PASSWORD, Duration::from_secs(900))
        .unwrap();
    let serial = vm.serial();
    assert!(
        !serial.contains("Please enter"),
        "a passphrase was asked for:\n{serial}"
    );

    // /usr is the verity-checked erofs named by usrhash=; root is the LUKS2 volume.
    assert_eq!(
        sh(&mut vm, "findmnt -no SOURCE,FSTYPE /usr").trim(),
        "/dev/mapper/usr erofs"
    );
    assert!(sh(&mut vm, "veritysetup status usr").contains("status:      verified"));
    let root = sh(&mut vm, "cryptsetup status root");
    assert!(root.contains("type:    LUKS2"), "{root}");
    assert_eq!(sh(&mut vm, "findmnt -no FSTYPE /").trim(), "btrfs");
    // systemd-cryptsetup, not a typed key, opened it: our token is what it used.
    let token = sh(
        &mut vm,
        "cryptsetup luksDump $(cryptsetup status root | awk '/device:/ {print $2}')",
    );
    assert!(token.contains("systemd-tpm2"), "{token}");
    assert!(sh(&mut vm, ". /usr/lib/os-release; echo $VERSION_ID").trim() == "1.0");

    // The hermetic /usr: /etc was empty and came from the factory and sysusers.
    assert!(sh(&mut vm, "cat /etc/passwd").contains("root:x:0:0"));

    let status = json(&mut vm, "osimage status --disk auto --json");
    assert_eq!(status["encryption"], "tpm2-and-recovery-key", "{status}");
    let parts = status["partitions"].as_array().unwrap();
    let labels: Vec<(&str, &str)> = parts
        .iter()
        .map(|p| (p["type"].as_str().unwrap(), p["label"].as_str().unwrap()))
        .collect();
    for want in [
        ("usr", "tessera_1.0"),
        ("usr", "_empty"),
        ("root", "root"),
        ("home", "home"),
        ("swap", "swap"),
    ] {
        assert!(labels.contains(&want), "{want:?} missing from {labels:?}");
    }

    // systemd-boot counted this boot (3 → 2 left, 1 done); the bless unit then
    // dropped the counter once boot-complete.target was reached.
    let blessed = (0..60).find_map(|_| {
        let out = sh(&mut vm, "ls /efi/EFI/Linux");
        if out.trim() == "tessera_1.0.efi" {
            Some(out)
        } else {
            std::thread::sleep(Duration::from_secs(2));
            None
        }
    });
    assert!(
        blessed.is_some(),
        "not blessed: {}",
        sh(
            &mut vm,
            "ls /efi/EFI/Linux; journalctl -b -u osimage-bless-boot -o cat"
        )
    );
    // What systemd-boot passed on is the counted name it renamed the file to.
    let counted = sh(
        &mut vm,
        "tr -d '\\000' < /sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f; echo",
    );
    assert!(counted.contains("tessera_1.0+2-1.efi"), "{counted:?}");
    let journal = sh(&mut vm, "journalctl -b -o cat -u osimage-bless-boot");
    // The initrd checked /usr's root hash signature before veritysetup used it.
    let checked = sh(&mut vm, "journalctl -b -o cat -u osimage-verify-usr");
    assert!(checked.contains(": signed (tessera_1.0 on "), "{checked}");
    assert!(
        journal.contains("blessed: now tessera_1.0.efi"),
        "{journal}"
    );

    session_shows_foot_through_kms(&mut vm);

    let timing = sh(&mut vm, "systemd-analyze");
    eprintln!(
        "first boot under TCG: {timing} (QEMU up {:.0} s)",
        vm.elapsed().as_secs_f64()
    );
    vm.send("systemctl poweroff\n").unwrap();
    assert!(
        vm.wait_exit(Duration::from_secs(180)),
        "the guest must power off"
    );
}

/// The session: tessera.service on tty1 (a logind session through PAM, the seat
/// through libseat), the kms backend on virtio-gpu, foot autostarted and
/// maximized. What QEMU scans out is checked against foot's configured colours,
/// and `msg planes` says what the commits put on the primary plane.
fn session_shows_foot_through_kms(vm: &mut Vm) {
    let msg = "tessera msg --json --socket \"$(ls /run/user/*/tessera-wayland-*.sock | head -n1)\"";
    let windows = (0..120).find_map(|_| {
        let (out, rc) = vm
            .shell(&format!("{msg} windows"), Duration::from_secs(60))
            .unwrap();
        if rc == 0 && out.contains("\"foot\"") {
            Some(out)
        } else {
            std::thread::sleep(Duration::from_secs(2));
            None
        }
    });
    assert!(
        windows.is_some(),
        "no foot window in the session:\n{}",
        sh(
            vm,
            "systemctl status tessera.service --no-pager; journalctl -b -o cat -u tessera.service | tail -n 80; true"
        )
    );
    let version = json(vm, &format!("{msg} version"));
    assert_eq!(version["data"]["backend"], "kms", "{version}");

    // foot maps its window before the shell has printed its prompt: look again
    // until the prompt is on the screen too.
    let foot_background = [0x20, 0x30, 0x40];
    let mut seen = String::new();
    let shown = (0..30).any(|i| {
        std::thread::sleep(Duration::from_secs(2));
        let shot = vm.screendump(&format!("session-{i}.png")).unwrap();
        let keep = std::env::temp_dir().join("tessera-appliance-session.png");
        let _ = std::fs::copy(&shot, &keep);
        let picture = Picture::read_png(&shot).unwrap();
        assert_eq!((picture.width, picture.height), (1280, 800));
        let (colour, share) = picture.dominant();
        let text = picture.share_unlike(colour, 60) * f64::from(picture.width * picture.height);
        seen = format!(
            "{share:.3} of the screen is {colour:02x?}, {text} pixels differ (in {})",
            keep.display()
        );
        // foot's maximized window is the screen, and the prompt and cursor are on it.
        colour
            .iter()
            .zip(foot_background)
            .all(|(a, b)| a.abs_diff(b) <= 2)
            && share > 0.8
            && text >= 50.0
    });
    assert!(
        shown,
        "the screen is not foot's maximized window with a prompt: {seen}\n{}",
        sh(
            vm,
            "systemd-cgls --no-pager -u tessera.service; journalctl -b -o cat -u tessera.service | tail -n 60; true"
        )
    );
    eprintln!("the session as QEMU scanned it out: {seen}");

    let planes = json(vm, &format!("{msg} planes"));
    let data = &planes["data"];
    assert_eq!(data["source"], "virtio_gpu", "{planes}");
    let output = &data["outputs"][0];
    assert_eq!(output["output"], "Virtual-1", "{planes}");
    let kms = &output["kms"];
    let count = |k: &str| kms[k].as_u64().unwrap_or(0);
    assert!(count("commits") > 0, "{planes}");
    assert_eq!(
        count("primary_swapchain") + count("primary_client"),
        count("commits"),
        "every commit carries the primary plane: {planes}"
    );
    assert_eq!(count("failed"), 0, "{planes}");
    let text = msg.replace(" --json", "");
    eprintln!("session: {}", sh(vm, &format!("{text} planes")));
}
