//! The appliance of `config/appliance/`: a Debian /usr made by mmdebstrap, its
//! dracut initrd, and the staging of one version of it for `osimage build`.
//!
//! The mmdebstrap result is cached beside the other artifacts, keyed by the package
//! list, the customize hook and the kernel, so a rebuild of the image takes seconds.
//! Layout: `<cache>/appliance-<key>/root/` (the tree, /usr hermetic), `initrd.img`
//! (dracut's), and a `.complete` marker.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::artifacts::{Lock, run};
use crate::cpio::Cpio;
use crate::{Artifacts, Result, RigError, io_err, which};

/// `config/appliance/` in this checkout.
pub fn definition_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/appliance")
}

/// `config/units/` in this checkout.
pub fn units_dir() -> PathBuf {
    config_dir().join("units")
}

/// The Debian suite the appliance is made from.
pub const SUITE: &str = "bookworm";

/// The package names of a `packages.list`: one per line, `#` comments.
pub fn parse_packages(list: &str) -> Vec<String> {
    list.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// FNV-1a over the inputs: the cache key only has to change when they do, and must
/// not depend on the toolchain (std's hashers may).
pub fn cache_key(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The mmdebstrap tree and its initrd.
#[derive(Debug, Clone)]
pub struct ApplianceRoot {
    pub root: PathBuf,
    pub initrd: PathBuf,
    pub key: String,
    pub art: Artifacts,
}

impl ApplianceRoot {
    /// Returns the cached tree, running mmdebstrap first when the inputs changed.
    pub fn ensure(art: &Artifacts) -> Result<ApplianceRoot> {
        let def = definition_dir();
        let list_path = def.join("packages.list");
        let hook = def.join("mmdebstrap/customize.sh");
        let hermetic = def.join("mmdebstrap/hermetic.sh");
        let list = std::fs::read_to_string(&list_path)
            .map_err(io_err(format!("read {}", list_path.display())))?;
        let mut hook_text = Vec::new();
        for script in [&hook, &hermetic] {
            hook_text.extend(
                std::fs::read(script).map_err(io_err(format!("read {}", script.display())))?,
            );
        }
        let packages = parse_packages(&list);
        let kernel = art
            .packages
            .first()
            .map(|(p, v)| format!("{p}={v}"))
            .unwrap_or_default();
        let key = cache_key(&[
            SUITE.as_bytes(),
            packages.join(",").as_bytes(),
            &hook_text,
            kernel.as_bytes(),
        ]);
        let dir = art.cache.join(format!("appliance-{key}"));
        let done = ApplianceRoot {
            root: dir.join("root"),
            initrd: dir.join("initrd.img"),
            key: key.clone(),
            art: art.clone(),
        };
        let _lock = Lock::take(&art.cache.join(".appliance.lock"))?;
        if dir.join(".complete").is_file() {
            return Ok(done);
        }
        eprintln!(
            "rig: mmdebstrap {SUITE} with {} packages into {}",
            packages.len(),
            dir.display()
        );
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&done.root).map_err(io_err(format!("create {}", dir.display())))?;
        run(Command::new(which("mmdebstrap")?)
            .args(["--variant=minbase", "--mode=root", "--format=directory"])
            .arg(format!("--include={}", packages.join(",")))
            .arg(format!("--customize-hook={}", hook.display()))
            .env("KVER", &art.kernel_release)
            .env("MODULES_DIR", &art.modules)
            .arg(SUITE)
            .arg(&done.root))?;
        std::fs::rename(done.root.join("initrd.img"), &done.initrd)
            .map_err(io_err("move the dracut initrd out of the tree"))?;
        run(Command::new(&hermetic).arg(&done.root))?;
        std::fs::write(dir.join(".complete"), format!("{}\n", packages.join("\n")))
            .map_err(io_err("mark complete"))?;
        Ok(done)
    }
}

/// The project's own programs that go into the image.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub osimage: PathBuf,
    /// The compositor, when it was built.
    pub tessera: Option<PathBuf>,
}

/// A unit that one staged version carries beyond the definition's own: the test
/// scenario's faulty release is v3 plus a unit that keeps it from booting well.
#[derive(Debug, Clone)]
pub struct ExtraUnit {
    pub name: String,
    pub text: String,
    /// The directory under the unit directory that links it, e.g.
    /// `multi-user.target.wants` or `boot-complete.target.requires`.
    pub link_dir: String,
}

/// Stages version `version` of the appliance under `work/<version>/`: a copy of
/// `config/appliance/` with its `build/` inputs (the /usr tree with our programs and
/// units, kernel, initrds, systemd-boot) and the signing keys shared by every version
/// under `work/keys`. Returns the `image.toml` to hand to `osimage build`.
pub fn stage(
    app: &ApplianceRoot,
    work: &Path,
    version: &str,
    bins: &Binaries,
    extra: &[ExtraUnit],
) -> Result<PathBuf> {
    let out = work.join(version);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("build"))
        .map_err(io_err(format!("create {}", out.display())))?;
    let def = definition_dir();
    for entry in ["firstboot.d", "repart.d"] {
        run(Command::new("cp").arg("-a").arg(def.join(entry)).arg(&out))?;
    }
    let toml =
        std::fs::read_to_string(def.join("image.toml")).map_err(io_err("read image.toml"))?;
    let toml = set_version(&toml, version)
        .ok_or_else(|| RigError::Failed("image.toml has no `version = …` line".into()))?;
    let definition = out.join("image.toml");
    std::fs::write(&definition, toml).map_err(io_err("write image.toml"))?;

    keys(&bins.osimage, &work.join("keys"))?;
    run(Command::new("cp")
        .arg("-a")
        .arg(work.join("keys"))
        .arg(&out))?;

    let build = out.join("build");
    let usr = build.join("usr");
    // Hard links: the tree is read, never written, through them (every file we add
    // is unlinked first), so the cache stays as mmdebstrap made it.
    run(Command::new("cp")
        .arg("-al")
        .arg(app.root.join("usr"))
        .arg(&usr))?;
    install_stripped(&bins.osimage, &usr.join("bin/osimage"))?;
    if let Some(tessera) = &bins.tessera {
        install_stripped(tessera, &usr.join("bin/tessera"))?;
    }
    replace(&usr.join("lib/os-release"), os_release(version).as_bytes())?;
    let units = usr.join("lib/systemd/system");
    for entry in std::fs::read_dir(units_dir()).map_err(io_err("list config/units"))? {
        let path = entry.map_err(io_err("list config/units"))?.path();
        if path.is_dir() {
            // A drop-in directory (`unit.d/`) for a unit of the distribution.
            run(Command::new("cp").arg("-a").arg(&path).arg(&units))?;
        } else if let Some(name) = path.file_name() {
            let bytes = std::fs::read(&path).map_err(io_err(format!("read {}", path.display())))?;
            replace(&units.join(name), &bytes)?;
        }
    }
    overlay_tree(&def.join("usr"), &usr)?;
    // What `osimage update` trusts: the vendor's certificate is part of the image,
    // so a release can only be replaced by one the same vendor signed.
    let cert = std::fs::read(work.join("keys/verity.crt")).map_err(io_err("read verity.crt"))?;
    std::fs::create_dir_all(usr.join("lib/osimage")).map_err(io_err("create lib/osimage"))?;
    replace(&usr.join("lib/osimage/vendor.crt"), &cert)?;
    for unit in extra {
        replace(&units.join(&unit.name), unit.text.as_bytes())?;
        link(&units, &unit.link_dir, &unit.name)?;
    }
    enable(&units, "basic.target", "osimage-bless-boot.service")?;
    // Updates come over the network: DHCP on any wired link
    // (usr/lib/systemd/network/80-appliance-wired.network).
    enable(&units, "multi-user.target", "systemd-networkd.service")?;
    enable(&units, "sockets.target", "systemd-networkd.socket")?;
    // The login session: default.target is graphical.target in Debian's systemd.
    enable(&units, "graphical.target", "tessera.service")?;

    let art = &app.art;
    for (name, target) in [
        ("vmlinuz", &art.vmlinuz),
        ("linuxx64.efi.stub", &art.efi_stub),
        ("systemd-bootx64.efi", &art.systemd_boot),
        ("initrd.img", &app.initrd),
    ] {
        std::os::unix::fs::symlink(target, build.join(name))
            .map_err(io_err(format!("link build/{name}")))?;
    }
    let overlay = initrd_overlay(
        app,
        &bins.osimage,
        &out.join("firstboot.d"),
        &out.join("keys/verity.crt"),
    )?;
    std::fs::write(build.join("initrd-osimage.cpio"), overlay)
        .map_err(io_err("write the initrd overlay"))?;
    Ok(definition)
}

/// Links `unit` into `target.wants` under the staged unit directory.
fn enable(units: &Path, target: &str, unit: &str) -> Result<()> {
    link(units, &format!("{target}.wants"), unit)
}

/// Links `unit` into `dir` (`x.target.wants`, `x.target.requires`) under the staged
/// unit directory, as `systemctl enable` would.
fn link(units: &Path, dir: &str, unit: &str) -> Result<()> {
    let at = units.join(dir);
    std::fs::create_dir_all(&at).map_err(io_err(format!("create {dir}")))?;
    let _ = std::fs::remove_file(at.join(unit));
    std::os::unix::fs::symlink(format!("../{unit}"), at.join(unit))
        .map_err(io_err(format!("link {unit} into {dir}")))
}

/// Adds the files under `from` (the definition's own /usr files: sysusers, tmpfiles,
/// the session config) to the staged /usr, each through `replace`, so the cached
/// tree behind the hard links is never written.
fn overlay_tree(from: &Path, usr: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry
            .map_err(io_err(format!("list {}", from.display())))?
            .path();
        let Some(name) = path.file_name() else {
            continue;
        };
        let to = usr.join(name);
        if path.is_dir() {
            std::fs::create_dir_all(&to).map_err(io_err(format!("create {}", to.display())))?;
            overlay_tree(&path, &to)?;
        } else {
            let bytes = std::fs::read(&path).map_err(io_err(format!("read {}", path.display())))?;
            replace(&to, &bytes)?;
        }
    }
    Ok(())
}

/// `osimage build --json` of a staged definition into `out`; returns its report.
pub fn build_image(osimage: &Path, definition: &Path, out: &Path) -> Result<serde_json::Value> {
    let o = Command::new(osimage)
        .args(["build", "--json", "--definition"])
        .arg(definition)
        .arg("--output")
        .arg(out)
        .output()
        .map_err(io_err("run osimage build"))?;
    if !o.status.success() {
        return Err(RigError::Failed(format!(
            "osimage build {} failed: {}",
            definition.display(),
            String::from_utf8_lossy(&o.stderr)
        )));
    }
    serde_json::from_slice(&o.stdout)
        .map_err(|e| RigError::Failed(format!("osimage build --json: {e}")))
}

/// A disk of `size` bytes holding `image` at its start: the room firstboot fills with
/// the B slot, root, home and swap (sparse, so it costs what is written).
pub fn make_disk(image: &Path, disk: &Path, size: u64) -> Result<()> {
    std::fs::copy(image, disk).map_err(io_err(format!("copy {}", image.display())))?;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(disk)
        .map_err(io_err(format!("open {}", disk.display())))?;
    f.set_len(size)
        .map_err(io_err(format!("grow {}", disk.display())))
}

/// Replaces the `version = "…"` line of `[image]`.
pub fn set_version(toml: &str, version: &str) -> Option<String> {
    let mut found = false;
    let lines: Vec<String> = toml
        .lines()
        .map(|l| {
            if !found && l.trim_start().starts_with("version =") {
                found = true;
                format!("version = \"{version}\"")
            } else {
                l.to_owned()
            }
        })
        .collect();
    found.then(|| lines.join("\n") + "\n")
}

/// `/usr/lib/os-release` of the image: `osimage status` and the update's version
/// check read `VERSION_ID` (and `IMAGE_VERSION`) from here.
pub fn os_release(version: &str) -> String {
    format!(
        "NAME=\"Tessera\"\nID=tessera\nID_LIKE=debian\nPRETTY_NAME=\"Tessera {version}\"\n\
         VERSION=\"{version}\"\nVERSION_ID={version}\nIMAGE_ID=tessera\nIMAGE_VERSION={version}\n\
         HOME_URL=\"https://tessera.invalid/\"\n"
    )
}

/// The second initrd archive, appended to dracut's: osimage, the libraries it links
/// that dracut did not pick, the partition definitions and the firstboot unit.
pub fn initrd_overlay(
    app: &ApplianceRoot,
    osimage: &Path,
    definitions: &Path,
    verity_cert: &Path,
) -> Result<Vec<u8>> {
    let mut c = Cpio::new();
    let stripped = tempfile::NamedTempFile::new().map_err(io_err("temp file"))?;
    strip(osimage, stripped.path())?;
    c.file(
        "usr/bin/osimage",
        0o755,
        &std::fs::read(stripped.path()).map_err(io_err("read stripped osimage"))?,
    );
    for lib in linked_libraries(osimage)? {
        let Some(name) = lib.file_name() else {
            continue;
        };
        // The appliance's own copy, so the initrd holds one version of each library.
        let from_root = app.root.join("usr/lib/x86_64-linux-gnu").join(name);
        let src = if from_root.is_file() {
            from_root
        } else {
            lib.clone()
        };
        let bytes = std::fs::read(&src).map_err(io_err(format!("read {}", src.display())))?;
        c.file(
            &format!("usr/lib/x86_64-linux-gnu/{}", name.to_string_lossy()),
            0o755,
            &bytes,
        );
    }
    for entry in std::fs::read_dir(definitions).map_err(io_err("list definitions"))? {
        let path = entry.map_err(io_err("list definitions"))?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&path).map_err(io_err(format!("read {}", path.display())))?;
        c.file(&format!("usr/lib/osimage/repart.d/{name}"), 0o644, &bytes);
    }
    let cert =
        std::fs::read(verity_cert).map_err(io_err(format!("read {}", verity_cert.display())))?;
    c.file("usr/lib/osimage/verity.crt", 0o644, &cert);
    // firstboot makes the volumes; check-usr gates /usr's verity device.
    for (unit, wanted_by) in [
        (
            "osimage-firstboot.service",
            "initrd-root-device.target.wants",
        ),
        (
            "osimage-verify-usr.service",
            "systemd-veritysetup@usr.service.requires",
        ),
    ] {
        let path = units_dir().join(unit);
        let bytes = std::fs::read(&path).map_err(io_err(format!("read {}", path.display())))?;
        c.file(&format!("usr/lib/systemd/system/{unit}"), 0o644, &bytes);
        c.symlink(
            &format!("usr/lib/systemd/system/{wanted_by}/{unit}"),
            &format!("../{unit}"),
        );
    }
    let wait = config_dir().join("initrd/firstboot-device-wait.conf");
    let wait = std::fs::read(&wait).map_err(io_err(format!("read {}", wait.display())))?;
    for device in FIRSTBOOT_DEVICES {
        c.file(
            &format!("usr/lib/systemd/system/{device}.d/50-osimage-firstboot.conf"),
            0o644,
            &wait,
        );
    }
    Ok(c.finish())
}

/// The initrd's devices that wait on firstboot (see
/// `config/initrd/firstboot-device-wait.conf`), as systemd escapes their paths.
const FIRSTBOOT_DEVICES: [&str; 3] = [
    r"dev-gpt\x2dauto\x2droot.device",
    r"dev-gpt\x2dauto\x2droot\x2dluks.device",
    "dev-mapper-usr.device",
];

/// `config/` in this checkout.
fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// The shared libraries `binary` loads, as `ldd` resolves them on this machine.
fn linked_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new(which("ldd")?)
        .arg(binary)
        .output()
        .map_err(io_err("run ldd"))?;
    Ok(parse_ldd(&String::from_utf8_lossy(&out.stdout)))
}

/// `libx.so.1 => /lib/x86_64-linux-gnu/libx.so.1 (0x…)` lines; the loader and libc
/// are dracut's already and stay as they are.
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| l.split("=>").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .filter(|p| p.starts_with('/'))
        .filter(|p| !p.contains("/libc.so") && !p.contains("ld-linux"))
        .map(PathBuf::from)
        .collect()
}

fn strip(from: &Path, to: &Path) -> Result<()> {
    run(Command::new(which("objcopy")?)
        .arg("--strip-debug")
        .arg(from)
        .arg(to))
}

fn install_stripped(from: &Path, to: &Path) -> Result<()> {
    let _ = std::fs::remove_file(to);
    strip(from, to)?;
    set_mode(to, 0o755)
}

/// Writes a new file in place of whatever (hard link, symlink) was at `path`.
fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).map_err(io_err(format!("write {}", path.display())))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("chmod {}", path.display())))
}

/// One verity key and one PCR-policy key, made once and shared by every version: an
/// update must be signed like the image it replaces.
fn keys(osimage: &Path, dir: &Path) -> Result<()> {
    for name in ["verity", "pcr"] {
        if !dir.join(format!("{name}.key")).is_file() {
            run(Command::new(osimage)
                .args(["genkey", "--out-dir"])
                .arg(dir)
                .args(["--name", name]))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_list_drops_comments_and_blank_lines() {
        let list = "# head\nsystemd\n\n  udev  # the device manager\n#foot\nfoot\n";
        assert_eq!(parse_packages(list), ["systemd", "udev", "foot"]);
    }

    #[test]
    fn the_cache_key_follows_every_input() {
        let a = cache_key(&[b"bookworm", b"systemd,udev"]);
        assert_eq!(a, cache_key(&[b"bookworm", b"systemd,udev"]));
        assert_ne!(a, cache_key(&[b"bookworm", b"systemd,udev,foot"]));
        // A byte moved between inputs is a different input.
        assert_ne!(cache_key(&[b"ab", b"c"]), cache_key(&[b"a", b"bc"]));
    }

    #[test]
    fn the_version_line_is_replaced_once() {
        let toml = "[image]\nname = \"tessera\"\nversion = \"1.0\"\n[x]\nversion = \"keep\"\n";
        let out = set_version(toml, "2.5").unwrap();
        assert!(
            out.contains("version = \"2.5\"\n[x]\nversion = \"keep\""),
            "{out}"
        );
        assert_eq!(set_version("name = 1\n", "2"), None);
    }

    #[test]
    fn ldd_output_gives_the_libraries_but_not_libc_or_the_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibcryptsetup.so.12 => /lib/x86_64-linux-gnu/libcryptsetup.so.12 (0x1)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x3)\n";
        assert_eq!(
            parse_ldd(text),
            [PathBuf::from("/lib/x86_64-linux-gnu/libcryptsetup.so.12")]
        );
    }
}
