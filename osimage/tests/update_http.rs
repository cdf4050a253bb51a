//! A/B update from a real nginx: publish, check, apply, faults, and a boot of the
//! updated disk in which systemd-boot picks the new version.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Fixture, Options, build_disk, bump_version, fixture, osimage, run_ok};
use osimage::disk::{Disk, FileDisk, read_gpt};
use tessera_rig::Nginx;
use tessera_rig::nginx::Fault;

struct Setup {
    fx: Fixture,
    disk: PathBuf,
    publish: PathBuf,
    /// The verity root hashes of v1 (on the disk) and v2 (published).
    roots: [String; 2],
}

/// v1 on a disk grown by an empty B slot; v2 published into a directory.
fn setup(opts: Options) -> Setup {
    let fx = fixture(opts);
    // Enough data that a throttled transfer takes seconds (incompressible, so erofs
    // keeps it whole).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let blob: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(fx.dir.path().join("tree/share/blob"), blob).unwrap();
    let (v1, r1) = build_disk(&fx);
    let disk = fx.dir.path().join("device.img");
    std::fs::rename(&v1, &disk).unwrap();
    bump_version(&fx, "2.0");
    let (v2, r2) = build_disk(&fx);
    let roots = [r1, r2].map(|r| r["rootHash"].as_str().unwrap().to_owned());
    let publish = fx.dir.path().join("publish");
    let d = fx.dir.path();
    run_ok(
        osimage()
            .arg("publish")
            .arg(&publish)
            .arg("--image")
            .arg(&v2)
            .arg("--key")
            .arg(d.join("keys/verity.key"))
            .arg("--cert")
            .arg(d.join("keys/verity.crt")),
    );
    // The B slot, as firstboot would make it.
    let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    f.set_len(f.metadata().unwrap().len() + (16 << 20)).unwrap();
    drop(f);
    let mut dev = FileDisk::open(&disk).unwrap();
    osimage::update::slots::add_empty(&mut dev, 8 << 20, 1 << 20, 1 << 20).unwrap();
    Setup {
        fx,
        disk,
        publish,
        roots,
    }
}

fn update(s: &Setup, source: &str, extra: &[&str]) -> std::process::Output {
    osimage()
        .args(["--json", "update", "--target"])
        .arg(&s.disk)
        .arg("--source")
        .arg(source)
        .arg("--vendor-cert")
        .arg(s.fx.dir.path().join("keys/verity.crt"))
        .args(["--booted", "1.0"])
        .args(extra)
        .output()
        .unwrap()
}

fn sha(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

#[test]
fn publish_check_apply_over_http_then_systemd_boot_picks_the_new_version() {
    let art = tessera_rig::Artifacts::ensure().unwrap();
    let initrd = tessera_rig::initrd::BusyboxInitrd::new()
        .script("echo \"TESSERA-BOOTED $(cat /proc/cmdline)\"")
        .build(&art)
        .unwrap();
    let s = setup(Options {
        initrd: Some(initrd),
        cmdline: "console=ttyS0,115200 panic=-1".into(),
        ..Options::default()
    });
    let mut names: Vec<String> = std::fs::read_dir(&s.publish)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "SHA256SUMS",
            "SHA256SUMS.p7s",
            "tessera_2.0.efi",
            "tessera_2.0.usr-verity",
            "tessera_2.0.usr-verity-sig",
            "tessera_2.0.usr.erofs"
        ]
    );
    // openssl agrees with the manifest signature.
    let out = common::openssl_cms_verify(
        &s.publish.join("SHA256SUMS.p7s"),
        &s.publish.join("SHA256SUMS"),
        &s.fx.dir.path().join("keys/verity.crt"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let nginx = Nginx::serve(&s.publish).unwrap();
    let check = run_ok(&mut {
        let mut c = osimage();
        c.args(["--json", "update", "--check", "--target"])
            .arg(&s.disk)
            .arg("--source")
            .arg(nginx.base_url())
            .arg("--vendor-cert")
            .arg(s.fx.dir.path().join("keys/verity.crt"))
            .args(["--booted", "1.0"]);
        c
    });
    let check: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(check["decision"]["action"], "install");
    assert_eq!(check["decision"]["version"], "2.0");
    assert_eq!(check["decision"]["replaces"], serde_json::Value::Null);

    let out = update(&s, &nginx.base_url(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["activated"], "tessera_2.0+3.efi");

    // The new slot carries its label and the root-hash UUIDs; v1 is untouched.
    let dev = FileDisk::open(&s.disk).unwrap();
    let gpt = read_gpt(&dev).unwrap();
    let labels: Vec<&str> = gpt.partitions.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "ESP",
            "tessera_1.0",
            "tessera_1.0",
            "tessera_1.0",
            "tessera_2.0",
            "tessera_2.0",
            "tessera_2.0"
        ]
    );
    drop(dev);
    let st = run_ok(
        osimage()
            .args(["--json", "boot", "status", "--image"])
            .arg(&s.disk),
    );
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["entries"][0]["fileName"], "tessera_2.0+3.efi");
    assert_eq!(st["entries"][0]["default"], true);
    assert_eq!(st["entries"][1]["fileName"], "tessera_1.0.efi");

    // Running it again changes nothing.
    let before = sha(&s.disk);
    let out = update(&s, &nginx.base_url(), &[]);
    assert!(out.status.success());
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["decision"]["action"], "upToDate");
    assert_eq!(before, sha(&s.disk));

    // Firmware, systemd-boot, and the new UKI with the new slot's usrhash=.
    let root =
        gpt.partitions[4].uuid.simple().to_string() + &gpt.partitions[5].uuid.simple().to_string();
    let mut vm = tessera_rig::Vm::start(&tessera_rig::VmConfig::firmware(&s.disk)).unwrap();
    let line = vm
        .wait_for_line("TESSERA-BOOTED", Duration::from_secs(300))
        .unwrap();
    assert!(line.contains(&format!("usrhash={root}")), "{line}");
    assert!(vm.wait_exit(Duration::from_secs(60)));
    drop(vm);
    let st = run_ok(
        osimage()
            .args(["--json", "boot", "status", "--image"])
            .arg(&s.disk),
    );
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["entries"][0]["fileName"], "tessera_2.0+2-1.efi");
}

/// Every fault: an error that says what, nothing activated, v1 untouched.
#[test]
fn faults_activate_nothing_and_leave_the_running_version_alone() {
    let s = setup(Options::default());
    let dev = FileDisk::open(&s.disk).unwrap();
    let gpt = read_gpt(&dev).unwrap();
    let v1_parts: Vec<(u64, u64)> = gpt.partitions[..4]
        .iter()
        .map(|p| (p.first_lba * 512, p.sectors() * 512))
        .collect();
    let read = |d: &FileDisk, (o, l): (u64, u64)| {
        let mut v = vec![0u8; l as usize];
        d.read_at(o, &mut v).unwrap();
        v
    };
    let v1_before: Vec<Vec<u8>> = v1_parts.iter().skip(1).map(|&r| read(&dev, r)).collect();
    drop(dev);

    let assert_untouched = |what: &str| {
        let dev = FileDisk::open(&s.disk).unwrap();
        for (i, &r) in v1_parts.iter().skip(1).enumerate() {
            assert!(
                read(&dev, r) == v1_before[i],
                "{what}: v1 partition {} changed",
                i + 2
            );
        }
        let st = run_ok(
            osimage()
                .args(["--json", "boot", "status", "--image"])
                .arg(&s.disk),
        );
        let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        let files: Vec<&str> = st["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["fileName"].as_str().unwrap())
            .collect();
        assert_eq!(files, ["tessera_1.0.efi"], "{what}: boot entries");
    };
    let fails = |source: &str, needle: &str| {
        let out = update(&s, source, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{needle}: update must fail");
        assert!(err.contains(needle), "expected `{needle}` in: {err}");
        assert_untouched(needle);
    };
    let pristine = s.fx.dir.path().join("pristine");
    run_ok(Command::new("cp").arg("-a").arg(&s.publish).arg(&pristine));
    let restore = || {
        std::fs::remove_dir_all(&s.publish).unwrap();
        run_ok(Command::new("cp").arg("-a").arg(&pristine).arg(&s.publish));
    };

    let mut nginx = Nginx::serve_with_faults(
        &s.publish,
        vec![
            Fault::Status {
                prefix: "broken".into(),
                code: 500,
            },
            Fault::Slow {
                prefix: "slow".into(),
                bytes_per_sec: 1_000_000,
                after: 0,
            },
        ],
    )
    .unwrap();
    let base = nginx.base_url();

    // A 500 on everything.
    fails(&format!("{base}/broken"), "HTTP 500");
    // A tampered manifest: its signature no longer verifies.
    let sums = s.publish.join("SHA256SUMS");
    let text = std::fs::read_to_string(&sums).unwrap();
    std::fs::write(&sums, text.replacen('a', "b", 1)).unwrap();
    fails(&base, "SHA256SUMS.p7s");
    restore();
    // A missing signature.
    std::fs::remove_file(s.publish.join("SHA256SUMS.p7s")).unwrap();
    fails(&base, "no signature");
    restore();
    // A file whose bytes differ from the signed manifest (wrong hash).
    let usr = s.publish.join("tessera_2.0.usr-verity");
    let mut bytes = std::fs::read(&usr).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&usr, bytes).unwrap();
    fails(&base, "the signed manifest says");
    restore();
    // A truncated file.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(s.publish.join("tessera_2.0.usr.erofs"))
        .unwrap();
    f.set_len(4096).unwrap();
    drop(f);
    fails(&base, "the signed manifest says");
    restore();

    // A 404: an incomplete set is not offered, and --check says why.
    std::fs::remove_file(s.publish.join("tessera_2.0.efi")).unwrap();
    let out = update(&s, &base, &["--check"]);
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(3), "refused");
    assert_eq!(rep["offered"][0]["missing"][0], "efi");
    assert_untouched("incomplete set");
    restore();

    // A connection dropped mid-file resumes with Range and finishes.
    let slow = format!("{base}/slow");
    let child = osimage()
        .args(["--json", "update", "--target"])
        .arg(&s.disk)
        .arg("--source")
        .arg(&slow)
        .arg("--vendor-cert")
        .arg(s.fx.dir.path().join("keys/verity.crt"))
        .args(["--booted", "1.0"])
        .env("RUST_LOG", "osimage=warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server part-way through the 3 MiB /usr file (1 MB/s) and bring it back.
    std::thread::sleep(Duration::from_millis(700));
    nginx.restart().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("resuming at byte"),
        "the transfer must have resumed: {err}"
    );
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["activated"], "tessera_2.0+3.efi");
}

/// Without `--booted`, the running version is the slot whose root hash is the kernel's
/// `usrhash=`. A damaged slot is repaired by re-running the update, unless it is the
/// one running: that one is never rewritten under the system.
#[test]
fn the_running_version_comes_from_usrhash_and_is_never_rewritten() {
    let s = setup(Options::default());
    let d = s.fx.dir.path();
    let running = |root: &str| {
        let path = d.join(format!("cmdline-{}", &root[..8]));
        std::fs::write(&path, format!("BOOT_IMAGE=/x ro usrhash={root} quiet\n")).unwrap();
        path
    };
    let update = |cmdline: &Path| -> serde_json::Value {
        let out = run_ok(
            osimage()
                .args(["--json", "update", "--target"])
                .arg(&s.disk)
                .arg("--source")
                .arg(&s.publish)
                .arg("--vendor-cert")
                .arg(d.join("keys/verity.crt"))
                .arg("--cmdline")
                .arg(cmdline),
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let rep = update(&running(&s.roots[0]));
    assert_eq!(rep["booted"], "1.0");
    assert_eq!(rep["activated"], "tessera_2.0+3.efi");

    // Damage v2's /usr on the device.
    let gpt = read_gpt(&FileDisk::open(&s.disk).unwrap()).unwrap();
    let usr = gpt
        .partitions
        .iter()
        .find(|p| p.kind == osimage::gpt::PartitionType::Usr && p.label == "tessera_2.0")
        .unwrap();
    let at = usr.first_lba * gpt.sector_size as u64 + 8192;
    let byte = |disk: &Path| {
        let mut b = [0u8; 1];
        FileDisk::open(disk).unwrap().read_at(at, &mut b).unwrap();
        b[0]
    };
    let good = byte(&s.disk);
    FileDisk::open(&s.disk)
        .unwrap()
        .write_at(at, &[!good])
        .unwrap();

    // Running v2: the damage stays (it is in use), and nothing is installed.
    let rep = update(&running(&s.roots[1]));
    assert_eq!(rep["booted"], "2.0");
    assert_eq!(rep["decision"]["action"], "upToDate", "{rep}");
    assert_eq!(byte(&s.disk), !good, "the running slot was rewritten");

    // Running v1: v2's slot is not in use, so the re-run repairs it.
    let rep = update(&running(&s.roots[0]));
    assert_eq!(rep["booted"], "1.0");
    assert_eq!(rep["decision"]["action"], "install", "{rep}");
    assert_eq!(byte(&s.disk), good, "the damaged slot was not repaired");

    // A usrhash= of no slot here (another disk is running) protects nothing.
    let rep = update(&running(&"ab".repeat(32)));
    assert_eq!(rep["booted"], serde_json::Value::Null);
}

#[test]
fn settings_come_from_update_toml_or_sysupdate_transfers() {
    let s = setup(Options::default());
    let d = s.fx.dir.path();
    std::fs::write(
        d.join("update.toml"),
        format!(
            "[source]\nurl = \"{}\"\nvendor-cert = \"keys/verity.crt\"\n\n[transfer]\nname = \"tessera\"\nmin-version = \"3.0\"\n",
            s.publish.display()
        ),
    )
    .unwrap();
    let out = osimage()
        .args(["--json", "update", "--check", "--booted", "1.0", "--target"])
        .arg(&s.disk)
        .arg("--config")
        .arg(d.join("update.toml"))
        .output()
        .unwrap();
    // MinVersion 3.0 from the file: 2.0 is not good enough.
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let td = d.join("sysupdate.d");
    std::fs::create_dir_all(&td).unwrap();
    std::fs::write(
        td.join("50-uki.transfer"),
        format!(
            "[Source]\nType=regular-file\nPath={}\nMatchPattern=tessera_@v.efi\n[Target]\nType=regular-file\nPath=/EFI/Linux\nInstancesMax=2\nTriesLeft=5\n",
            s.publish.display()
        ),
    )
    .unwrap();
    let out = run_ok(
        osimage()
            .args(["--json", "update", "--booted", "1.0", "--target"])
            .arg(&s.disk)
            .arg("--transfer-dir")
            .arg(&td)
            .arg("--vendor-cert")
            .arg(d.join("keys/verity.crt")),
    );
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["activated"], "tessera_2.0+5.efi");
}
