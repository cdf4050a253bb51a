//! The rig's QEMU guest: the Debian kernel with a busybox initrd, under TCG.

use std::time::{Duration, Instant};

use tessera_rig::initrd::BusyboxInitrd;
use tessera_rig::qmp::png_size;
use tessera_rig::{Artifacts, Swtpm, Vm, VmConfig};

const CMDLINE: &str = "console=ttyS0,115200 panic=-1 loglevel=4";
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

fn boot(
    initrd: BusyboxInitrd,
    extra: impl FnOnce(VmConfig) -> VmConfig,
) -> (Vm, tempfile::TempDir) {
    let art = Artifacts::ensure().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let initrd_path = dir.path().join("initrd.cpio");
    initrd.write(&art, &initrd_path).unwrap();
    let config = extra(VmConfig::direct(&art.vmlinuz, &initrd_path, CMDLINE));
    (Vm::start(&config).unwrap(), dir)
}

#[test]
fn kernel_and_busybox_initrd_reach_a_marker_and_power_off() {
    let started = Instant::now();
    let (mut vm, _dir) = boot(
        BusyboxInitrd::new().script("echo \"TESSERA-RIG-MARKER $(uname -r)\""),
        |c| c,
    );
    let line = vm
        .wait_for_line("TESSERA-RIG-MARKER", BOOT_TIMEOUT)
        .unwrap();
    let art = Artifacts::ensure().unwrap();
    assert!(line.ends_with(&art.kernel_release), "{line}");
    assert!(
        vm.wait_exit(Duration::from_secs(60)),
        "guest must power off by itself"
    );
    // Reported, not gated on: TCG speed depends on the host.
    eprintln!(
        "rig: boot to marker and power-off took {:.1}s wall ({:.1}s in QEMU)",
        started.elapsed().as_secs_f64(),
        vm.elapsed().as_secs_f64()
    );
}

#[test]
fn guest_with_vtpm_sees_tpmrm0() {
    let tpm = Swtpm::unix().unwrap();
    let (mut vm, _dir) = boot(
        BusyboxInitrd::new().module("tpm_crb").script(
            "if [ -c /dev/tpmrm0 ]; then echo RIG-TPM-PRESENT; else echo RIG-TPM-ABSENT; ls -l /dev; fi",
        ),
        |c| c.with_tpm(&tpm),
    );
    let line = vm
        .wait_for_line("RIG-TPM-(PRESENT|ABSENT)", BOOT_TIMEOUT)
        .unwrap();
    assert_eq!(line, "RIG-TPM-PRESENT", "console:\n{}", vm.serial());
    assert!(vm.wait_exit(Duration::from_secs(60)));
}

#[test]
fn guest_with_virtio_gpu_sees_card0_and_screendump_is_a_png_of_its_size() {
    // The script waits for the ACPI power button, so QMP's powerdown is what ends it.
    let script = r#"
if [ -c /dev/dri/card0 ]; then echo RIG-GPU-PRESENT; else echo RIG-GPU-ABSENT; ls -lR /dev; fi
for d in /sys/class/input/event*; do
  if grep -q "Power Button" "$d/device/name" 2>/dev/null; then
    ( head -c 24 "/dev/input/${d##*/}" >/dev/null; echo RIG-POWER-BUTTON; sync; poweroff -f ) &
  fi
done
echo RIG-WAITING
wait
"#;
    let (mut vm, dir) = boot(
        BusyboxInitrd::new()
            .module("virtio_pci")
            .module("virtio_gpu")
            .module("button")
            .module("evdev")
            .script(script),
        |c| c.with_gpu(1024, 768),
    );
    let line = vm
        .wait_for_line("RIG-GPU-(PRESENT|ABSENT)", BOOT_TIMEOUT)
        .unwrap();
    assert_eq!(line, "RIG-GPU-PRESENT", "console:\n{}", vm.serial());
    vm.wait_for_line("RIG-WAITING", Duration::from_secs(60))
        .unwrap();

    // fbcon takes the display over shortly after the driver binds; until then QEMU
    // shows its placeholder surface at another size.
    let deadline = Instant::now() + Duration::from_secs(60);
    let size = loop {
        let png = vm.screendump("screen.png").unwrap();
        let bytes = std::fs::read(&png).unwrap();
        let size = png_size(&bytes).expect("screendump must be a PNG");
        if size == (1024, 768) || Instant::now() > deadline {
            std::fs::copy(&png, dir.path().join("screen.png")).unwrap();
            break size;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(size, (1024, 768));

    vm.powerdown().unwrap();
    vm.wait_for_line("RIG-POWER-BUTTON", Duration::from_secs(60))
        .unwrap();
    assert!(
        vm.wait_exit(Duration::from_secs(60)),
        "guest must power off on the button"
    );
}
