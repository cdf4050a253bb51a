//! The appliance end to end (issue 8): the image of `config/appliance/` (a Debian
//! /usr from mmdebstrap, a dracut initrd, made by `osimage build`) boots in QEMU
//! under OVMF with a swtpm vTPM, and every format osimage wrote is read by the real
//! consumer. One machine lives through the whole scenario, as a user's would:
//! 1. first boot: systemd-boot picks the boot-counted UKI; the initrd checks the
//!    signature of /usr's root hash and sets /usr up from `usrhash=`; `osimage
//!    firstboot` creates root, home and swap as LUKS2 bound to the vTPM;
//!    systemd-cryptsetup unlocks root through our `systemd-tpm2` token; Tessera is
//!    the session on virtio-gpu with foot; QEMU's virtio keyboard, mouse and
//!    tablet, and a touch screen and a stylus plugged in through uinput, reach it
//!    by libinput (`support/session_input.rs`), and a reload sets them from the
//!    new file, a device's own table over its kind's;
//!    Ctrl+Alt+F2 leaves it for tty2 and Ctrl+Alt+F1
//!    brings it back with its devices;
//! 2. `osimage boot bless` drops the counter after boot-complete.target;
//! 3. `osimage update` fetches v2 from nginx on the host and writes the `_empty` B
//!    slot; v2 boots, unlocks root with no re-enrollment, and is blessed;
//! 4. v3 is published with a unit that fails before boot-complete.target: its try
//!    runs out and systemd-boot goes back to v2 on its own;
//! 5. home is an authenticated volume (Integrity=inline): a sector changed beneath it
//!    reads as an I/O error; a factory reset re-creates root and home and leaves the
//!    usr slots alone;
//! 6. a byte flipped in the running usr partition from the host is an I/O error in
//!    the guest (dm-verity), never silently read.
//!
//! The console is driven like a person would: log in on the serial getty (root's
//! password comes from an SMBIOS credential that systemd-sysusers applies) and type.

#[path = "support/session_input.rs"]
mod session_input;
#[path = "support/appliance.rs"]
mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::{BootFigures, Scenario, foot_on_screen, json, sh, sh_rc, until};
use tessera_rig::appliance::ExtraUnit;
use tessera_rig::{Nginx, Swtpm, Vm, VmConfig};

const PASSWORD: &str = "tessera";
const BOOT: Duration = Duration::from_secs(900);
/// The partition under the open `root` volume, in the guest's shell.
const ROOT_PARTITION: &str = "$(cryptsetup status root | awk '/device:/ {print $2}')";

/// The faulty release's extra unit: it fails, and boot-complete.target requires it.
fn fault() -> ExtraUnit {
    ExtraUnit {
        name: "tessera-release-fault.service".into(),
        text: "[Unit]\n\
               Description=A broken release (test scenario): fails before boot-complete.target\n\
               DefaultDependencies=no\n\
               Before=boot-complete.target\n\
               [Service]\n\
               Type=oneshot\n\
               ExecStart=/bin/false\n"
            .into(),
        link_dir: "boot-complete.target.requires".into(),
    }
}

fn config(disk: &Path, tpm: &Swtpm) -> VmConfig {
    VmConfig::firmware(disk)
        .with_tpm(tpm)
        .with_gpu(1280, 800)
        .with_user_net()
        .with_credential("passwd.plaintext-password.root", PASSWORD)
        .with_typed_console()
        .with_input()
}

/// Logs in on this boot's console; no boot may ever ask for a passphrase.
fn login(vm: &mut Vm) {
    vm.login("root", PASSWORD, BOOT).unwrap();
    let serial = vm.boot_serial();
    assert!(
        !serial.contains("Please enter"),
        "a passphrase was asked for:\n{serial}"
    );
}

fn version(vm: &mut Vm) -> String {
    sh(vm, ". /usr/lib/os-release; echo $VERSION_ID")
        .trim()
        .to_owned()
}

/// Waits until the bless unit dropped the counter of `version`'s UKI.
fn wait_blessed(vm: &mut Vm, version: &str) {
    let name = format!("tessera_{version}.efi");
    let blessed = until(90, Duration::from_secs(2), || {
        let out = sh(vm, "ls /efi/EFI/Linux");
        out.split_whitespace().any(|f| f == name)
    });
    assert!(
        blessed,
        "{version} not blessed: {}",
        sh(
            vm,
            "ls /efi/EFI/Linux; journalctl -b -u osimage-bless-boot -o cat; true"
        )
    );
}

/// root's LUKS2 tokens, as cryptsetup prints them.
fn root_tokens(vm: &mut Vm) -> String {
    sh(
        vm,
        &format!("cryptsetup luksDump {ROOT_PARTITION} | sed -n '/^Tokens:/,/^Digests:/p'"),
    )
}

fn luks_uuid(vm: &mut Vm) -> String {
    sh(vm, &format!("cryptsetup luksUUID {ROOT_PARTITION}"))
        .trim()
        .to_owned()
}

/// (label, partition UUID) of the usr slots, from `osimage status`.
fn usr_slots(vm: &mut Vm) -> Vec<(String, String)> {
    let status = json(vm, "osimage status --disk auto --json");
    let mut slots: Vec<(String, String)> = status["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"].as_str().unwrap_or_default().starts_with("usr"))
        .map(|p| {
            (
                p["label"].as_str().unwrap_or_default().to_owned(),
                p["uuid"].to_string(),
            )
        })
        .collect();
    slots.sort();
    slots
}

/// `osimage update` in the guest against the host's nginx.
fn update(vm: &mut Vm, nginx: &Nginx, tries: u32) -> Value {
    // networkd brings the virtio NIC up by DHCP; wait for it like an updater would.
    let (out, rc) = sh_rc(
        vm,
        "/lib/systemd/systemd-networkd-wait-online --timeout=120",
    );
    assert_eq!(
        rc,
        0,
        "the network did not come up: {out}\n{}",
        sh(
            vm,
            "ls /sys/class/net; networkctl list; networkctl status -a; systemctl status systemd-networkd --no-pager; journalctl -b -o cat -u systemd-networkd | tail -n 30; true"
        )
    );
    json(
        vm,
        &format!(
            "osimage --json update --target auto --source http://10.0.2.2:{}/ \
             --vendor-cert /usr/lib/osimage/vendor.crt --tries {tries}",
            nginx.port()
        ),
    )
}

#[test]
fn appliance_first_boot_update_rollback_factory_reset_and_tamper() {
    let started = std::time::Instant::now();
    let sc = Scenario::new();
    let v1 = sc.build("1.0", &[]);
    let disk = sc.dir().join("disk.img");
    support::make_disk(v1, &disk);
    let publish = sc.dir().join("publish");
    std::fs::create_dir_all(&publish).unwrap();
    let nginx = Nginx::serve(&publish).unwrap();
    let mut figures: Vec<BootFigures> = Vec::new();

    let mut tpm = Swtpm::unix().unwrap();
    let mut vm = Vm::start(&config(&disk, &tpm)).unwrap();

    // 1. First boot. In the initrd, firstboot made the volumes, sealed to the TPM.
    vm.wait_for_line(
        "encrypted partitions open with: TPM2 \\(signed PCR policy\\)",
        BOOT,
    )
    .unwrap();
    login(&mut vm);
    first_boot_checks(&mut vm);
    foot_on_screen(&mut vm, "first boot");
    session_input::session_input(&mut vm);
    session_input::vt_switch_and_back(&mut vm);
    // 2. Blessing: systemd-boot counted this boot (3 → 2 left, 1 done); the bless
    // unit then dropped the counter once boot-complete.target was reached.
    wait_blessed(&mut vm, "1.0");
    let counted = sh(
        &mut vm,
        "tr -d '\\000' < /sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f; echo",
    );
    assert!(counted.contains("tessera_1.0+2-1.efi"), "{counted:?}");
    let journal = sh(&mut vm, "journalctl -b -o cat -u osimage-bless-boot");
    assert!(
        journal.contains("blessed: now tessera_1.0.efi"),
        "{journal}"
    );
    figures.push(BootFigures::read(&mut vm, "first boot (1.0, firstboot)"));

    // 3. Update to v2 from nginx, into the empty B slot.
    let v2 = sc.build("2.0", &[]);
    sc.publish(v2, &publish);
    let root_before = luks_uuid(&mut vm);
    let tokens_before = root_tokens(&mut vm);
    assert!(tokens_before.contains("systemd-tpm2"), "{tokens_before}");
    let report = update(&mut vm, &nginx, 3);
    assert_eq!(report["activated"], "tessera_2.0+3.efi", "{report}");
    let slots = usr_slots(&mut vm);
    assert!(
        slots.iter().any(|(l, _)| l == "tessera_1.0")
            && slots.iter().any(|(l, _)| l == "tessera_2.0"),
        "{slots:?}"
    );
    assert!(
        nginx.access_log().contains("tessera_2.0.usr"),
        "the guest did not fetch from nginx:\n{}",
        nginx.access_log()
    );
    vm.reboot().unwrap();
    login(&mut vm);
    assert_eq!(version(&mut vm), "2.0");
    // The same LUKS2 root, opened by the same token: the signed PCR 11 policy
    // accepted the new UKI's measurements with no re-enrollment.
    assert_eq!(luks_uuid(&mut vm), root_before);
    assert_eq!(root_tokens(&mut vm), tokens_before, "root was re-enrolled");
    wait_blessed(&mut vm, "2.0");
    figures.push(BootFigures::read(&mut vm, "update (2.0)"));

    // 4. Rollback: v3 fails before boot-complete.target; with one try, systemd-boot
    // boots it once, then counts it bad and boots v2 again by itself.
    let v3 = sc.build("3.0", &[fault()]);
    sc.publish(v3, &publish);
    let report = update(&mut vm, &nginx, 1);
    assert_eq!(report["activated"], "tessera_3.0+1.efi", "{report}");
    vm.reboot().unwrap();
    login(&mut vm);
    assert_eq!(version(&mut vm), "3.0");
    let (state, _) = sh_rc(&mut vm, "systemctl is-active boot-complete.target");
    assert_ne!(
        state.trim(),
        "active",
        "the faulty release completed its boot"
    );
    let (fault_state, _) = sh_rc(&mut vm, "systemctl is-failed tessera-release-fault.service");
    assert_eq!(fault_state.trim(), "failed");
    vm.reboot().unwrap();
    login(&mut vm);
    assert_eq!(
        version(&mut vm),
        "2.0",
        "systemd-boot did not fall back to 2.0"
    );
    let boot = json(&mut vm, "osimage --json boot status");
    let state_of = |v: &str| {
        boot["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["version"] == v)
            .map(|e| e["state"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(state_of("3.0").as_deref(), Some("bad"), "{boot}");
    assert_eq!(state_of("2.0").as_deref(), Some("good"), "{boot}");
    figures.push(BootFigures::read(&mut vm, "rollback (back on 2.0)"));

    // Home is an authenticated LUKS2 volume (Integrity=inline): every sector reads
    // back, and a sector changed beneath it fails to read (EILSEQ), never as data.
    home_integrity(&mut vm);
    home_tamper_is_an_io_error(&mut vm);

    // 5. Factory reset: root is re-created, the usr slots are not touched.
    let slots_before = usr_slots(&mut vm);
    let root_before = luks_uuid(&mut vm);
    sh(&mut vm, "echo precious > /root/before-reset; sync");
    sh(&mut vm, "osimage factory-reset request");
    vm.reboot().unwrap();
    vm.wait_for_line(
        "encrypted partitions open with: TPM2 \\(signed PCR policy\\)",
        BOOT,
    )
    .unwrap();
    login(&mut vm);
    assert_ne!(luks_uuid(&mut vm), root_before, "root was not re-created");
    let (_, rc) = sh_rc(&mut vm, "test -e /root/before-reset");
    assert_ne!(rc, 0, "a file from before the reset survived it");
    assert_eq!(usr_slots(&mut vm), slots_before);
    assert_eq!(version(&mut vm), "2.0");
    home_integrity(&mut vm);
    foot_on_screen(&mut vm, "after the factory reset");
    figures.push(BootFigures::read(&mut vm, "factory reset (2.0, firstboot)"));

    // 6. Tamper: flip a byte of a file's data in the running slot (2.0) while the
    // machine is off; reading it must fail, not return altered bytes.
    vm.send("systemctl poweroff\n").unwrap();
    assert!(
        vm.wait_exit(Duration::from_secs(180)),
        "the guest must power off"
    );
    drop(vm);
    let victim = "share/common-licenses/GPL-3";
    let at = support::flip_file_byte(&disk, "tessera_2.0", &sc.usr_tree("2.0").join(victim));
    eprintln!("tamper: flipped the byte at {at} of the disk");
    // QEMU's shutdown ends swtpm too (CMD_SHUTDOWN): power the TPM on again, with
    // its state, as the machine's own would be.
    tpm.restart().unwrap();
    let mut vm = Vm::start(&config(&disk, &tpm)).unwrap();
    login(&mut vm);
    let (out, rc) = sh_rc(&mut vm, &format!("cat /usr/{victim} > /dev/null"));
    assert_ne!(rc, 0, "the tampered block was read:\n{out}");
    assert!(out.contains("Input/output error"), "{out}");
    let kernel = sh(&mut vm, "journalctl -k -b -o cat | grep -i verity; true");
    assert!(kernel.contains("is corrupted"), "{kernel}");
    let (_, rc) = sh_rc(&mut vm, "cat /usr/share/common-licenses/GPL-2 > /dev/null");
    assert_eq!(rc, 0, "an untouched file must still read");
    vm.send("systemctl poweroff\n").unwrap();
    assert!(
        vm.wait_exit(Duration::from_secs(180)),
        "the guest must power off"
    );

    eprintln!("appliance boots under TCG (seconds):");
    eprintln!("{}", BootFigures::table(&figures));
    eprintln!(
        "the whole scenario: {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// Home is mounted from its LUKS2 volume with dm-integrity under dm-crypt, opened by
/// systemd-cryptsetup through the TPM2 token like root, and its last 64 MiB (never
/// written by btrfs) read back: the tags firstboot initialized match.
fn home_integrity(vm: &mut Vm) {
    // btrfs names the device node it was scanned under (/dev/dm-N).
    assert_eq!(sh(vm, "findmnt -no FSTYPE /home").trim(), "btrfs");
    sh(
        vm,
        "test \"$(readlink -f /dev/mapper/home)\" = \"$(readlink -f \"$(findmnt -no SOURCE /home)\")\"",
    );
    let status = sh(vm, "cryptsetup status home");
    assert!(status.contains("integrity: hmac(sha256)"), "{status}");
    let disk = json(vm, "osimage status --disk auto --json");
    let home = disk["partitions"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["label"] == "home"))
        .unwrap_or_else(|| panic!("no home in {disk}"));
    assert_eq!(home["integrity"], "hmac(sha256)", "{disk}");
    assert!(
        status
            .lines()
            .any(|l| l.trim().starts_with("sector size:") && l.trim().ends_with(" 4096")),
        "{status}"
    );
    sh(
        vm,
        "mib=$(($(blockdev --getsize64 /dev/mapper/home) >> 20)); \
         dd if=/dev/mapper/home of=/dev/null bs=1M iflag=direct skip=$((mib - 64)) status=none",
    );
}

/// Overwrites 4 MiB near the end of home's partition beneath the open volume; reading
/// the end of the volume must then fail with the kernel's integrity error (EILSEQ). A factory reset re-creates home
/// next, so the damage goes with it.
fn home_tamper_is_an_io_error(vm: &mut Vm) {
    sh(
        vm,
        "raw=/dev/disk/by-partlabel/home; mib=$(($(blockdev --getsize64 $raw) >> 20)); \
         dd if=/dev/urandom of=$raw bs=1M count=4 seek=$((mib - 40)) oflag=direct \
         conv=notrunc status=none",
    );
    let (out, rc) = sh_rc(
        vm,
        "mib=$(($(blockdev --getsize64 /dev/mapper/home) >> 20)); \
         dd if=/dev/mapper/home of=/dev/null bs=1M iflag=direct skip=$((mib - 64)) status=none",
    );
    assert_ne!(rc, 0, "the tampered sectors were read:\n{out}");
    // dm-crypt fails a sector whose tag does not match with BLK_STS_PROTECTION,
    // which reaches the reader as EILSEQ (EIO on older kernels).
    assert!(
        out.contains("Invalid or incomplete multibyte or wide character")
            || out.contains("Input/output error"),
        "{out}"
    );
}

fn first_boot_checks(vm: &mut Vm) {
    // /usr is the verity-checked erofs named by usrhash=; root is the LUKS2 volume.
    assert_eq!(
        sh(vm, "findmnt -no SOURCE,FSTYPE /usr").trim(),
        "/dev/mapper/usr erofs"
    );
    assert!(sh(vm, "veritysetup status usr").contains("status:      verified"));
    let root = sh(vm, "cryptsetup status root");
    assert!(root.contains("type:    LUKS2"), "{root}");
    assert_eq!(sh(vm, "findmnt -no FSTYPE /").trim(), "btrfs");
    // systemd-cryptsetup, not a typed key, opened it: our token is what it used.
    let token = sh(vm, &format!("cryptsetup luksDump {ROOT_PARTITION}"));
    assert!(token.contains("systemd-tpm2"), "{token}");
    assert_eq!(version(vm), "1.0");
    // The hermetic /usr: /etc was empty and came from the factory and sysusers;
    // PID 1 wrote the new machine's ID into it (root is mounted `rw`).
    assert!(sh(vm, "cat /etc/passwd").contains("root:x:0:0"));
    assert_eq!(sh(vm, "wc -c < /etc/machine-id").trim(), "33");
    let (_, mounted) = sh_rc(vm, "findmnt /etc/machine-id");
    assert_ne!(mounted, 0, "/etc/machine-id is a transient bind mount");
    // The initrd checked /usr's root hash signature before veritysetup used it.
    let checked = sh(vm, "journalctl -b -o cat -u osimage-verify-usr");
    assert!(checked.contains(": signed (tessera_1.0 on "), "{checked}");

    let status = json(vm, "osimage status --disk auto --json");
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
}
