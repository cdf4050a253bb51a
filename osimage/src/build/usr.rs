//! The /usr file system image, made by the file system's own tools with flags that
//! make the output a function of the tree alone.

use std::path::{Path, PathBuf};
use std::process::Command;

use uuid::Uuid;

use super::BuildError;
use crate::definition::FsFormat;

/// What a hermetic /usr must not contain at its top: machine state and configuration
/// live in /etc and /var, created at boot from /usr (tmpfiles, sysusers, factory).
const NON_HERMETIC: [&str; 2] = ["etc", "var"];

/// Checks the tree: it exists, is a /usr (not a whole root), and is hermetic.
/// Returns warnings when `allow_non_hermetic` turns violations into warnings.
pub fn check_tree(tree: &Path, allow_non_hermetic: bool) -> Result<Vec<String>, BuildError> {
    let meta = std::fs::metadata(tree).map_err(|e| BuildError::Input {
        what: format!("/usr tree {}", tree.display()),
        why: e.to_string(),
    })?;
    if !meta.is_dir() {
        return Err(BuildError::Input {
            what: format!("/usr tree {}", tree.display()),
            why: "is not a directory".into(),
        });
    }
    if tree.join("usr").is_dir() {
        return Err(BuildError::Input {
            what: format!("/usr tree {}", tree.display()),
            why: "contains usr/: give the /usr directory itself, not a root file system".into(),
        });
    }
    let mut warnings = Vec::new();
    for name in NON_HERMETIC {
        if tree.join(name).exists() {
            let msg = format!(
                "{}/{name} exists: a hermetic /usr carries no /{name} content (ship it under share/factory/{name} and let tmpfiles copy it)",
                tree.display()
            );
            if !allow_non_hermetic {
                return Err(BuildError::NonHermetic(msg));
            }
            warnings.push(msg);
        }
    }
    Ok(warnings)
}

/// /usr laid down from `layers` in order (see `ImageDefinition::usr_layers`), copied
/// into `stage`; a lone layer that is a whole tree is used where it is. Copies, never
/// links, so nothing written into the stage can reach the sources.
pub fn merge_trees(
    layers: &[crate::definition::ExtraTree],
    stage: &Path,
) -> Result<PathBuf, BuildError> {
    if let [only] = layers
        && only.target.as_os_str().is_empty()
    {
        return Ok(only.source.clone());
    }
    std::fs::create_dir_all(stage).map_err(|e| BuildError::io(stage, e))?;
    for t in layers {
        let meta = std::fs::metadata(&t.source).map_err(|e| BuildError::Input {
            what: format!("{} (for /usr/{})", t.source.display(), t.target.display()),
            why: e.to_string(),
        })?;
        let dest = stage.join(&t.target);
        if meta.is_dir() {
            std::fs::create_dir_all(&dest).map_err(|e| BuildError::io(&dest, e))?;
            copy(&t.source.join("."), &dest)?;
        } else {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| BuildError::io(parent, e))?;
            }
            copy(&t.source, &dest)?;
        }
    }
    Ok(stage.to_owned())
}

/// `cp -a`, replacing what is at the destination instead of writing through it.
fn copy(from: &Path, to: &Path) -> Result<(), BuildError> {
    let out = Command::new("cp")
        .args(["-a", "--reflink=auto", "--remove-destination", "-T"])
        .arg(from)
        .arg(to)
        .output()
        .map_err(|e| BuildError::Tool {
            tool: "cp".into(),
            why: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(BuildError::Tool {
            tool: "cp".into(),
            why: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

/// Builds the file system image of `tree` into `out`.
pub fn make_fs(
    format: FsFormat,
    tree: &Path,
    out: &Path,
    uuid: Uuid,
    epoch: u64,
) -> Result<PathBuf, BuildError> {
    let mut cmd = match format {
        FsFormat::Erofs => {
            let mut c = Command::new("mkfs.erofs");
            c.arg(format!("-T{epoch}"))
                .arg(format!("-U{uuid}"))
                .args(["--all-root", "-x-1", "--quiet"])
                .arg(out)
                .arg(tree);
            c
        }
        FsFormat::Squashfs => {
            let mut c = Command::new("mksquashfs");
            c.arg(tree)
                .arg(out)
                .args([
                    "-noappend",
                    "-all-root",
                    "-no-xattrs",
                    "-quiet",
                    "-no-progress",
                ])
                .arg("-mkfs-time")
                .arg(epoch.to_string())
                .arg("-all-time")
                .arg(epoch.to_string())
                // mksquashfs 4.5 refuses to run with both SOURCE_DATE_EPOCH and the
                // flags; the flags carry the same time, whatever the caller's
                // environment holds.
                .env_remove("SOURCE_DATE_EPOCH");
            c
        }
        other => {
            return Err(BuildError::Input {
                what: "usr partition".into(),
                why: format!("Format={other} is not a read-only image format (erofs or squashfs)"),
            });
        }
    };
    let output = cmd.output().map_err(|e| BuildError::Tool {
        tool: format!("{:?}", cmd.get_program()),
        why: format!("{e} (cargo xtask deps installs erofs-utils and squashfs-tools)"),
    })?;
    if !output.status.success() {
        return Err(BuildError::Tool {
            tool: format!("{:?}", cmd.get_program()),
            why: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    // Verity hashes whole 4 KiB blocks; squashfs pads only to 4 KiB by default, erofs
    // is block-sized already. Pad with zeros, which both file systems ignore.
    let len = std::fs::metadata(out)
        .map_err(|e| BuildError::io(out, e))?
        .len();
    let padded = len.div_ceil(4096) * 4096;
    if padded != len {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(out)
            .map_err(|e| BuildError::io(out, e))?;
        f.set_len(padded).map_err(|e| BuildError::io(out, e))?;
    }
    Ok(out.to_owned())
}
