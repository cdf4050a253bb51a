//! A small image definition over the cached Debian artifacts, for build tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use osimage::sign::SigningIdentity;
use tessera_rig::Artifacts;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub definition: PathBuf,
}

pub struct Options {
    pub sector_size: u32,
    pub initrd: Option<Vec<u8>>,
    pub cmdline: String,
    pub loader_conf: String,
    pub extra_partitions: String,
    /// Sign PCR 11 policies (`.pcrsig`, `.pcrpkey`) with a fresh key.
    pub pcr_key: bool,
    pub version: String,
    /// Bytes to use as the kernel instead of Debian's (small UKIs for crash sweeps).
    pub kernel: Option<Vec<u8>>,
    pub esp_size: Option<String>,
    /// Put [`SPLASH_BMP`] in the UKI's `.splash`.
    pub splash: bool,
}

/// A 1x1 24-bit BMP: a valid `.splash` for systemd's stub.
pub const SPLASH_BMP: &[u8] = b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0\x01\0\0\0\x01\0\0\0\x01\0\x18\0\0\0\0\0\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\xff\0\0\0";

impl Default for Options {
    fn default() -> Self {
        Options {
            sector_size: 512,
            initrd: None,
            cmdline: "console=ttyS0".into(),
            loader_conf: "timeout 0\n".into(),
            extra_partitions: String::new(),
            pcr_key: false,
            splash: false,
            version: "1.0".into(),
            kernel: None,
            esp_size: None,
        }
    }
}

fn write(path: &Path, data: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// A fresh key per fixture is fine for golden layouts: partition UUIDs come from the
/// root hash, and the signature bytes sit inside a fixed-size partition.
pub fn fixture(opts: Options) -> Fixture {
    let art = Artifacts::ensure().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("tree/bin/hello"),
        "#!/bin/sh\necho hello from /usr\n",
    );
    write(
        &d.join("tree/lib/os-release"),
        "ID=tessera\nVERSION_ID=1.0\n",
    );
    write(&d.join("tree/share/factory/etc/hostname"), "tessera\n");
    write(
        &d.join("os-release"),
        "ID=tessera\nNAME=Tessera\nVERSION_ID=1.0\n",
    );
    write(
        &d.join("initrd"),
        opts.initrd.unwrap_or_else(|| b"not an initrd".to_vec()),
    );
    let kernel = match &opts.kernel {
        Some(bytes) => {
            write(&d.join("vmlinuz"), bytes);
            d.join("vmlinuz")
        }
        None => art.vmlinuz.clone(),
    };
    let id = SigningIdentity::generate("test verity key").unwrap();
    write(&d.join("keys/verity.key"), id.key_pem().unwrap());
    write(&d.join("keys/verity.crt"), id.cert_pem().unwrap());
    let pcr_line = if opts.pcr_key {
        let pcr = SigningIdentity::generate("test pcr key").unwrap();
        write(&d.join("keys/pcr.key"), pcr.key_pem().unwrap());
        "pcr-key = \"keys/pcr.key\"\n"
    } else {
        ""
    };
    let splash_line = if opts.splash {
        std::fs::write(d.join("splash.bmp"), SPLASH_BMP).unwrap();
        "splash = \"splash.bmp\"\n"
    } else {
        ""
    };
    let toml = format!(
        r#"[image]
name = "tessera"
version = "{version}"
seed = "tessera-test-seed"
sector-size = {ss}

[usr]
tree = "tree"

[uki]
stub = "{stub}"
kernel = "{kernel}"
initrd = ["initrd"]
os-release = "os-release"
cmdline = "{cmdline}"
{splash_line}
[boot]
systemd-boot = "{sdboot}"
loader-conf = "{loader}"

[signing]
verity-key = "keys/verity.key"
verity-cert = "keys/verity.crt"
{pcr_line}
[[partition]]
Type = "esp"
SizeMinBytes = "{esp}"

[[partition]]
Type = "usr"
Format = "erofs"
Verity = "data"
VerityMatchKey = "usr"

[[partition]]
Type = "usr-verity"
Verity = "hash"
VerityMatchKey = "usr"

[[partition]]
Type = "usr-verity-sig"
Verity = "signature"
VerityMatchKey = "usr"
{extra}"#,
        ss = opts.sector_size,
        stub = art.efi_stub.display(),
        kernel = kernel.display(),
        sdboot = art.systemd_boot.display(),
        cmdline = opts.cmdline,
        loader = opts.loader_conf.escape_default(),
        // FAT32 on 4 KiB sectors needs a larger volume.
        esp = if opts.sector_size == 4096 {
            "300M"
        } else {
            "64M"
        },
        extra = opts.extra_partitions,
        pcr_line = pcr_line,
        version = opts.version,
    );
    let definition = d.join("image.toml");
    write(&definition, toml);
    Fixture { dir, definition }
}

pub fn osimage() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_osimage"))
}

/// Runs `osimage --json build` with a fixed SOURCE_DATE_EPOCH and returns its output.
pub fn build(definition: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    osimage()
        .args(["--json", "build", "-d"])
        .arg(definition)
        .arg("-o")
        .arg(out)
        .args(extra)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap()
}

/// The JSON report of a build that must have succeeded.
pub fn report(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Builds the fixture into `<dir>/disk.img` and returns the image path and report.
pub fn build_disk(fx: &Fixture) -> (PathBuf, serde_json::Value) {
    let img = fx.dir.path().join("disk.img");
    let rep = report(&build(&fx.definition, &img, &[]));
    (img, rep)
}

/// Runs a command that must succeed; its stderr is the failure message.
pub fn run_ok(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What `systemd-dissect --json=short` reports of an image or device.
pub fn dissect(target: impl AsRef<std::ffi::OsStr>) -> serde_json::Value {
    let out = run_ok(
        std::process::Command::new("systemd-dissect")
            .arg("--json=short")
            .arg(target),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The partition systemd-dissect found for `designator` (`usr`, `esp` ...).
pub fn dissected<'a>(dissect: &'a serde_json::Value, designator: &str) -> &'a serde_json::Value {
    dissect["mounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["designator"] == designator))
        .unwrap_or_else(|| panic!("systemd-dissect did not see {designator}: {dissect}"))
}

/// Rewrites the fixture for another version with a changed /usr, keeping its keys.
pub fn bump_version(fx: &Fixture, version: &str) {
    let text = std::fs::read_to_string(&fx.definition).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("version = "))
        .unwrap()
        .to_owned();
    std::fs::write(
        &fx.definition,
        text.replacen(&line, &format!("version = \"{version}\""), 1),
    )
    .unwrap();
    write(
        &fx.dir.path().join("tree/lib/os-release"),
        format!("ID=tessera\nVERSION_ID={version}\n"),
    );
    write(
        &fx.dir
            .path()
            .join(format!("tree/share/tessera/release-{version}")),
        version,
    );
}

/// `openssl cms -verify -binary` of a detached DER signature over `content` with
/// `ca` as the trust anchor.
pub fn openssl_cms_verify(p7s: &Path, content: &Path, ca: &Path) -> std::process::Output {
    std::process::Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-out",
            "/dev/null",
            "-in",
        ])
        .arg(p7s)
        .arg("-content")
        .arg(content)
        .arg("-CAfile")
        .arg(ca)
        .output()
        .unwrap()
}
