//! `osimage boot status | bless | set-default | oneshot`: boot assessment on a mounted
//! ESP directory or on the ESP inside a disk image.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::efivars::{ATTR_NV_BS_RT, EfiVars, LOADER_VENDOR};
use super::entry::{self, BootEntry};
use super::esp::{self, EspLocation, UKI_DIR};
use crate::disk::{Disk, FileDisk, read_gpt};

/// Where the UKIs are.
#[derive(Debug)]
pub enum BootRoot {
    /// A mounted ESP or XBOOTLDR (`/efi`, `/boot`).
    Dir(PathBuf),
    /// The ESP (or XBOOTLDR, when present) inside a disk image or block device.
    Image { disk: FileDisk, at: EspLocation },
}

impl BootRoot {
    /// The first of /efi, /boot/efi, /boot that holds `EFI/Linux`.
    pub fn find_mounted() -> Option<BootRoot> {
        ["/efi", "/boot/efi", "/boot"]
            .iter()
            .map(Path::new)
            .find(|p| p.join(UKI_DIR).is_dir())
            .map(|p| BootRoot::Dir(p.to_owned()))
    }

    pub fn image(path: &Path) -> io::Result<BootRoot> {
        let disk = FileDisk::open(path)?;
        let gpt = read_gpt(&disk).map_err(|e| io::Error::other(e.to_string()))?;
        let at = esp::boot_partition(&gpt).ok_or_else(|| {
            io::Error::other(format!("{}: no ESP or XBOOTLDR partition", path.display()))
        })?;
        Ok(BootRoot::Image { disk, at })
    }

    /// The UKIs in `EFI/Linux`, by file name.
    pub fn entries(&mut self) -> io::Result<Vec<BootEntry>> {
        Ok(self
            .list(UKI_DIR)?
            .iter()
            .filter_map(|n| BootEntry::parse(n))
            .collect())
    }

    /// Reads `path` (relative to the ESP root); `None` when it does not exist.
    pub fn read(&mut self, path: &str) -> io::Result<Option<Vec<u8>>> {
        match self {
            BootRoot::Dir(root) => match std::fs::read(root.join(path)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            BootRoot::Image { disk, at } => esp::read_file(disk as &mut dyn Disk, *at, path),
        }
    }

    /// File names in `dir` (empty when it does not exist).
    pub fn list(&mut self, dir: &str) -> io::Result<Vec<String>> {
        match self {
            BootRoot::Dir(root) => match std::fs::read_dir(root.join(dir)) {
                Ok(rd) => {
                    let mut v: Vec<String> = rd
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    v.sort();
                    Ok(v)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(e),
            },
            BootRoot::Image { disk, at } => esp::list(disk as &mut dyn Disk, *at, dir),
        }
    }

    /// Writes `dir/name` whole or not at all (a temporary name, then a rename).
    pub fn write(&mut self, dir: &str, name: &str, data: &[u8]) -> io::Result<()> {
        match self {
            BootRoot::Dir(root) => {
                let d = root.join(dir);
                std::fs::create_dir_all(&d)?;
                let tmp = d.join(format!(".{name}.tmp"));
                std::fs::write(&tmp, data)?;
                std::fs::File::open(&tmp)?.sync_all()?;
                std::fs::rename(&tmp, d.join(name))?;
                std::fs::File::open(&d)?.sync_all()
            }
            BootRoot::Image { disk, at } => {
                esp::install_file(disk as &mut dyn Disk, *at, dir, name, data)
            }
        }
    }

    pub fn remove(&mut self, dir: &str, name: &str) -> io::Result<()> {
        match self {
            BootRoot::Dir(root) => std::fs::remove_file(root.join(dir).join(name)),
            BootRoot::Image { disk, at } => esp::remove(disk as &mut dyn Disk, *at, dir, name),
        }
    }

    pub fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        match self {
            BootRoot::Dir(root) => {
                let dir = root.join(UKI_DIR);
                std::fs::rename(dir.join(from), dir.join(to))?;
                // Make the rename durable before reporting success.
                std::fs::File::open(&dir)?.sync_all()
            }
            BootRoot::Image { disk, at } => {
                esp::rename(disk as &mut dyn Disk, *at, UKI_DIR, from, to)
            }
        }
    }
}

/// How the booted entry was determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootedSource {
    /// `LoaderBootCountPath`, set by systemd-boot when it counted this boot.
    LoaderBootCountPath,
    /// `LoaderEntrySelected`.
    LoaderEntrySelected,
    /// No loader variables: what systemd-boot's rules would pick.
    Inferred,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryStatus {
    #[serde(flatten)]
    pub entry: BootEntry,
    pub version: String,
    /// good (blessed), bad (no tries left) or indeterminate (being counted).
    pub state: &'static str,
    pub default: bool,
    pub booted: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootStatus {
    pub entries: Vec<EntryStatus>,
    pub booted: Option<String>,
    pub booted_source: Option<BootedSource>,
    pub default_pattern: Option<String>,
    pub oneshot: Option<String>,
}

fn basename(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

/// Status in systemd-boot's menu order.
pub fn status(root: &mut BootRoot, vars: Option<&EfiVars>) -> io::Result<BootStatus> {
    let entries = entry::sorted(&root.entries()?);
    let var = |name: &str| -> io::Result<Option<String>> {
        match vars {
            Some(v) => v.get_string(name, LOADER_VENDOR),
            None => Ok(None),
        }
    };
    let default_pattern = var("LoaderEntryDefault")?;
    let oneshot = var("LoaderEntryOneShot")?;
    let (booted, booted_source) = if let Some(p) = var("LoaderBootCountPath")? {
        (
            Some(basename(&p).to_owned()),
            Some(BootedSource::LoaderBootCountPath),
        )
    } else if let Some(s) = var("LoaderEntrySelected")? {
        (Some(s), Some(BootedSource::LoaderEntrySelected))
    } else {
        let i = entry::select(&entries, default_pattern.as_deref(), None);
        (
            i.map(|i| entries[i].file_name.clone()),
            i.map(|_| BootedSource::Inferred),
        )
    };
    let default = entry::select(&entries, default_pattern.as_deref(), None);
    let statuses = entries
        .iter()
        .enumerate()
        .map(|(i, e)| EntryStatus {
            version: e.version().to_owned(),
            state: if e.is_bad() {
                "bad"
            } else if e.is_indeterminate() {
                "indeterminate"
            } else {
                "good"
            },
            default: default == Some(i),
            booted: booted
                .as_deref()
                .is_some_and(|b| b == e.file_name || b == e.id),
            entry: e.clone(),
        })
        .collect();
    Ok(BootStatus {
        entries: statuses,
        booted,
        booted_source,
        default_pattern,
        oneshot,
    })
}

/// Marks the booted entry (or `entry`) good by dropping its counter, as
/// systemd-bless-boot does. Returns the new file name, or `None` when there was
/// nothing to do (already good).
pub fn bless(
    root: &mut BootRoot,
    vars: Option<&EfiVars>,
    entry: Option<&str>,
) -> io::Result<Option<String>> {
    let target = match entry {
        Some(e) => e.to_owned(),
        None => {
            let st = status(root, vars)?;
            match (st.booted, st.booted_source) {
                (Some(b), Some(src)) if src != BootedSource::Inferred => b,
                _ => {
                    return Err(io::Error::other(
                        "cannot tell which entry booted (no LoaderBootCountPath or LoaderEntrySelected); name it with --entry",
                    ));
                }
            }
        }
    };
    let entries = root.entries()?;
    let e = entries
        .iter()
        .find(|e| e.file_name == target || e.id == target)
        .ok_or_else(|| io::Error::other(format!("no boot entry {target}")))?;
    if e.tries_left.is_none() {
        return Ok(None);
    }
    let to = e.blessed();
    root.rename(&e.file_name, &to)?;
    Ok(Some(to))
}

/// Marks an entry bad (tries left 0), as `systemd-bless-boot bad`.
pub fn mark_bad(root: &mut BootRoot, entry: &str) -> io::Result<String> {
    let entries = root.entries()?;
    let e = entries
        .iter()
        .find(|e| e.file_name == entry || e.id == entry)
        .ok_or_else(|| io::Error::other(format!("no boot entry {entry}")))?;
    let to = e.marked_bad();
    root.rename(&e.file_name, &to)?;
    Ok(to)
}

/// Sets `LoaderEntryDefault` or `LoaderEntryOneShot`.
pub fn set_loader_entry(vars: &EfiVars, oneshot: bool, id: &str) -> io::Result<()> {
    let name = if oneshot {
        "LoaderEntryOneShot"
    } else {
        "LoaderEntryDefault"
    };
    vars.set_string(name, LOADER_VENDOR, ATTR_NV_BS_RT, id)
}
