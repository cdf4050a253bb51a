//! A disk from `osimage build` boots under OVMF: the firmware starts systemd-boot
//! from the ESP, systemd-boot picks our UKI, and the UKI's kernel and initrd run with
//! the command line we put in it.

mod common;

use std::time::Duration;

use common::{Options, fixture, osimage};
use tessera_rig::initrd::BusyboxInitrd;
use tessera_rig::{Artifacts, Vm, VmConfig};

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
    let img = fx.dir.path().join("disk.img");
    let out = osimage()
        .args(["--json", "build", "-d"])
        .arg(&fx.definition)
        .arg("-o")
        .arg(&img)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let root = report["rootHash"].as_str().unwrap();

    let mut vm = Vm::start(&VmConfig::firmware(&img)).unwrap();
    let line = vm
        .wait_for_line("TESSERA-UKI-BOOTED", Duration::from_secs(300))
        .unwrap();
    assert!(line.contains(&format!("usrhash={root}")), "{line}");
    assert!(line.contains("console=ttyS0,115200"), "{line}");
    assert!(vm.wait_exit(Duration::from_secs(60)), "guest must power off");
    eprintln!("boot: firmware to UKI initrd marker in {:.1}s", vm.elapsed().as_secs_f64());
}
