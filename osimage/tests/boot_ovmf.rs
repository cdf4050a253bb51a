//! A disk from `osimage build` boots under OVMF: the firmware starts systemd-boot
//! from the ESP, systemd-boot picks our UKI, and the UKI's kernel and initrd run with
//! the command line we put in it.

mod common;

use std::time::Duration;

use common::{Options, build_disk, fixture};
use tessera_rig::initrd::BusyboxInitrd;
use tessera_rig::{Artifacts, Swtpm, Vm, VmConfig};

#[test]
fn systemd_boot_starts_our_uki_under_ovmf() {
    let art = Artifacts::ensure().unwrap();
    let initrd = BusyboxInitrd::new()
        .script("echo \"TESSERA-UKI-BOOTED cmdline: $(cat /proc/cmdline)\"")
        .build(&art)
        .unwrap();
    let fx = fixture(Options {
        initrd: Some(initrd),
        cmdline: "console=ttyS0,115200 panic=-1".into(),
        ..Options::default()
    });
    let (img, report) = build_disk(&fx);
    let root = report["rootHash"].as_str().unwrap();

    let mut vm = Vm::start(&VmConfig::firmware(&img)).unwrap();
    let line = vm
        .wait_for_line("TESSERA-UKI-BOOTED", Duration::from_secs(300))
        .unwrap();
    assert!(line.contains(&format!("usrhash={root}")), "{line}");
    assert!(line.contains("console=ttyS0,115200"), "{line}");
    assert!(
        vm.wait_exit(Duration::from_secs(60)),
        "guest must power off"
    );
    eprintln!(
        "boot: firmware to UKI initrd marker in {:.1}s",
        vm.elapsed().as_secs_f64()
    );
}

#[test]
fn pcr11_read_in_the_guest_equals_the_prediction() {
    let art = Artifacts::ensure().unwrap();
    // No systemd-pcrphase runs in this initrd, so PCR 11 is what the stub measured.
    let initrd = BusyboxInitrd::new()
        .script("echo \"TESSERA-PCR11 $(cat /sys/class/tpm/tpm0/pcr-sha256/11)\"")
        .build(&art)
        .unwrap();
    let fx = fixture(Options {
        initrd: Some(initrd),
        cmdline: "console=ttyS0,115200 panic=-1".into(),
        pcr_key: true,
        // Eight added sections: more than the stub's headers hold, so the headers
        // grow, and the firmware must still load it. The splash is measured too.
        splash: true,
        ..Options::default()
    });
    let (img, report) = build_disk(&fx);
    let predicted = report["pcr11"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == "")
        .unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned();

    let tpm = Swtpm::unix().unwrap();
    let mut vm = Vm::start(&VmConfig::firmware(&img).with_tpm(&tpm)).unwrap();
    let line = vm
        .wait_for_line("TESSERA-PCR11", Duration::from_secs(300))
        .unwrap();
    let read = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert_eq!(
        read, predicted,
        "PCR 11 in the guest vs osimage's prediction"
    );
    assert!(vm.wait_exit(Duration::from_secs(60)));
}
