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
    let definition = appliance::stage(&app, work, version, &bins).unwrap();
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
