//! The Debian artifacts the VM tests boot, fetched with `apt-get download` (never
//! installed) and cached by package version.
//!
//! Layout: `<cache>/<package>_<version>/root/` holds the unpacked `.deb`, and a
//! `.complete` file marks a finished unpack. The cache is
//! `$TESSERA_ARTIFACTS`, else `$XDG_CACHE_HOME/tessera/artifacts`, else
//! `~/.cache/tessera/artifacts`. Concurrent test processes serialise on a lock file.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::{Result, RigError, io_err, which};

/// The packages the VM tests need, by their Debian names.
pub const PACKAGES: [&str; 3] = ["linux-image-amd64", "systemd-boot-efi", "busybox-static"];

/// Paths into the cache, ready to boot.
#[derive(Debug, Clone, Serialize)]
pub struct Artifacts {
    pub cache: PathBuf,
    /// e.g. `6.1.0-41-amd64`
    pub kernel_release: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` of that kernel.
    pub modules: PathBuf,
    pub efi_stub: PathBuf,
    pub systemd_boot: PathBuf,
    pub busybox: PathBuf,
    /// `(package, version)` for each artifact, as fetched.
    pub packages: Vec<(String, String)>,
}

/// The cache directory in use.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TESSERA_ARTIFACTS") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("tessera").join("artifacts")
}

impl Artifacts {
    /// Returns the cached artifacts, downloading whatever is missing first.
    pub fn ensure() -> Result<Artifacts> {
        Artifacts::ensure_in(&cache_dir())
    }

    pub fn ensure_in(cache: &Path) -> Result<Artifacts> {
        std::fs::create_dir_all(cache).map_err(io_err(format!("create {}", cache.display())))?;
        let _lock = Lock::take(&cache.join(".lock"))?;

        // linux-image-amd64 is a metapackage; the files are in the versioned package
        // it depends on.
        let kernel_pkg = resolve_kernel_package()?;
        let kernel = fetch(cache, &kernel_pkg)?;
        let boot = fetch(cache, "systemd-boot-efi")?;
        let busybox = fetch(cache, "busybox-static")?;

        let modules_root = kernel.root.join("lib/modules");
        let kernel_release = std::fs::read_dir(&modules_root)
            .map_err(io_err(format!("read {}", modules_root.display())))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .next()
            .ok_or_else(|| RigError::Failed(format!("{} has no modules", kernel_pkg)))?;
        let modules = modules_root.join(&kernel_release);
        if !modules.join("modules.dep").is_file() {
            // A .deb ships no modules.dep: dpkg's postinst runs depmod. Do the same.
            run(Command::new(which("depmod")?)
                .arg("-b")
                .arg(&kernel.root)
                .arg(&kernel_release))?;
        }
        let art = Artifacts {
            cache: cache.to_owned(),
            vmlinuz: kernel.root.join(format!("boot/vmlinuz-{kernel_release}")),
            modules,
            kernel_release,
            efi_stub: boot.root.join("usr/lib/systemd/boot/efi/linuxx64.efi.stub"),
            systemd_boot: boot
                .root
                .join("usr/lib/systemd/boot/efi/systemd-bootx64.efi"),
            busybox: busybox.root.join("bin/busybox"),
            packages: vec![
                (kernel.package, kernel.version),
                (boot.package, boot.version),
                (busybox.package, busybox.version),
            ],
        };
        for path in [&art.vmlinuz, &art.efi_stub, &art.systemd_boot, &art.busybox] {
            if !path.is_file() {
                return Err(RigError::Failed(format!(
                    "artifact {} is missing from the unpacked package",
                    path.display()
                )));
            }
        }
        Ok(art)
    }
}

struct Fetched {
    package: String,
    version: String,
    root: PathBuf,
}

fn fetch(cache: &Path, package: &str) -> Result<Fetched> {
    let version = candidate_version(package)?;
    let dir = cache.join(format!("{package}_{}", sanitize(&version)));
    let root = dir.join("root");
    if dir.join(".complete").is_file() {
        return Ok(Fetched {
            package: package.to_owned(),
            version,
            root,
        });
    }
    tracing::info!("downloading {package} {version}");
    eprintln!("rig: fetching {package}={version} into {}", dir.display());
    let _ = std::fs::remove_dir_all(&dir);
    let work = dir.join("download");
    std::fs::create_dir_all(&work).map_err(io_err(format!("create {}", work.display())))?;
    run(Command::new(which("apt-get")?)
        .arg("download")
        .arg(format!("{package}={version}"))
        .current_dir(&work))?;
    let deb = std::fs::read_dir(&work)
        .map_err(io_err("list download dir"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| RigError::Failed(format!("apt-get download {package} produced no .deb")))?;
    run(Command::new(which("dpkg-deb")?)
        .arg("-x")
        .arg(&deb)
        .arg(&root))?;
    std::fs::remove_dir_all(&work).map_err(io_err("remove download dir"))?;
    std::fs::write(dir.join(".complete"), format!("{package} {version}\n"))
        .map_err(io_err("mark complete"))?;
    Ok(Fetched {
        package: package.to_owned(),
        version,
        root,
    })
}

/// `linux-image-amd64` → `linux-image-6.1.0-NN-amd64`.
fn resolve_kernel_package() -> Result<String> {
    ensure_apt_lists("linux-image-amd64")?;
    let out = output(Command::new(which("apt-cache")?).args(["depends", "linux-image-amd64"]))?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(|d| d.trim().trim_matches(|c| c == '<' || c == '>'))
        .find(|d| d.starts_with("linux-image-") && d.ends_with("-amd64"))
        .map(str::to_owned)
        .ok_or_else(|| RigError::Failed(format!("cannot resolve linux-image-amd64:\n{out}")))
}

fn candidate_version(package: &str) -> Result<String> {
    ensure_apt_lists(package)?;
    let out = output(Command::new(which("apt-cache")?).args(["policy", package]))?;
    parse_candidate(&out)
        .ok_or_else(|| RigError::Failed(format!("apt has no candidate for {package}:\n{out}")))
}

fn parse_candidate(policy: &str) -> Option<String> {
    policy
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .find(|v| !v.is_empty() && *v != "(none)")
        .map(str::to_owned)
}

/// Runs `apt-get update` once if apt does not know `package` yet (fresh machines ship
/// with empty lists).
fn ensure_apt_lists(package: &str) -> Result<()> {
    let out = output(Command::new(which("apt-cache")?).args(["policy", package]))?;
    if parse_candidate(&out).is_none() {
        eprintln!("rig: apt does not know {package}; running apt-get update");
        run(Command::new(which("apt-get")?).arg("update"))?;
    }
    Ok(())
}

fn sanitize(version: &str) -> String {
    version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".+-~".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().map_err(io_err(format!("run {cmd:?}")))?;
    if !out.status.success() {
        return Err(RigError::Failed(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    output(cmd).map(drop)
}

/// An exclusive `flock` on a file, released on drop.
pub(crate) struct Lock(File);

impl Lock {
    pub(crate) fn take(path: &Path) -> Result<Lock> {
        let file = File::create(path).map_err(io_err(format!("open {}", path.display())))?;
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(RigError::Io {
                what: format!("lock {}", path.display()),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Lock(file))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_is_parsed_from_apt_cache_policy() {
        let policy =
            "busybox-static:\n  Installed: (none)\n  Candidate: 1:1.35.0-4+b3\n  Version table:\n";
        assert_eq!(parse_candidate(policy).as_deref(), Some("1:1.35.0-4+b3"));
        assert_eq!(
            parse_candidate("x:\n  Installed: (none)\n  Candidate: (none)\n"),
            None
        );
    }

    #[test]
    fn versions_become_safe_directory_names() {
        assert_eq!(sanitize("1:1.35.0-4+b3"), "1_1.35.0-4+b3");
    }
}
