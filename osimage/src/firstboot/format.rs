//! The file systems of the partitions firstboot creates (`Format=`, with
//! `MakeDirectories=` and `MakeSymlinks=` laid into them). Making one needs the
//! partition as a block device, and an encrypted one opened through device-mapper,
//! so it happens only on a real disk ([`BlockDevice`]); on an image file the
//! partitions are left unformatted and the report says so.
//!
//! Crash safety: a partition to format first enters the table labelled
//! [`RESET_LABEL`], which the next run erases and re-creates, and takes its final
//! label only in a second table write, after its file system is complete. So a
//! partition with its final label always holds its file system.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use uuid::Uuid;

use super::plan::{PlannedPartition, RESET_LABEL};
use crate::definition::{FsFormat, MakeSymlink, PartitionDefinition};
use crate::luks::LuksError;

/// The kernel's side of a disk that is a block device: what firstboot needs beyond
/// reading and writing bytes.
pub trait BlockDevice {
    /// Makes the kernel's partitions match `gpt`, just written to the disk, and
    /// waits for their device nodes.
    fn sync_partitions(&mut self, gpt: &crate::gpt::Gpt) -> Result<(), FormatError>;
    /// Makes the file system `job` asks for on a partition the kernel knows.
    fn format(&mut self, job: &FormatJob<'_>) -> Result<(), FormatError>;
}

/// One file system to make.
pub struct FormatJob<'a> {
    /// The partition's entry number, which names its device node.
    pub number: u32,
    /// The partition's final label: the file system label, and the temporary
    /// device-mapper name of an encrypted one.
    pub label: &'a str,
    /// The partition's GPT UUID.
    pub uuid: Uuid,
    pub format: FsFormat,
    /// What the file system starts with (MakeDirectories=, MakeSymlinks=).
    pub tree: Option<&'a Path>,
    /// For an encrypted partition: the LUKS2 volume key, to open it without a
    /// passphrase.
    pub volume_key: Option<&'a [u8]>,
    /// An `Integrity=inline` volume: every sector is written once through the
    /// opened volume before mkfs, as `cryptsetup luksFormat --integrity` does, so
    /// that no sector is left with a tag that does not match.
    pub integrity: bool,
}

impl std::fmt::Debug for FormatJob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormatJob")
            .field("number", &self.number)
            .field("label", &self.label)
            .field("format", &self.format)
            .field("tree", &self.tree)
            .field("encrypted", &self.volume_key.is_some())
            .field("integrity", &self.integrity)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{what}")]
    Kernel { what: String },
    #[error("`{command}` failed: {why}")]
    Tool { command: String, why: String },
    #[error("{0}")]
    Luks(LuksError),
}

impl FormatError {
    pub fn io(what: impl Into<String>, source: io::Error) -> FormatError {
        FormatError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Whether firstboot makes a file system on `p`: B slots are filled by updates,
/// not formatted.
pub fn needs_format(p: &PlannedPartition) -> bool {
    !p.b_slot && p.format.is_some()
}

/// The labels the new partitions carry in each table write, in order. Formatting
/// takes two writes: first those to format carry [`RESET_LABEL`], then all carry
/// their own. Without formatting (an image file, or nothing has `Format=`), one.
pub fn label_phases(planned: &[PlannedPartition], formatting: bool) -> Vec<Vec<String>> {
    let last: Vec<String> = planned.iter().map(|p| p.label.clone()).collect();
    if !formatting || !planned.iter().any(needs_format) {
        return vec![last];
    }
    let first = planned
        .iter()
        .map(|p| {
            if needs_format(p) {
                RESET_LABEL.to_owned()
            } else {
                p.label.clone()
            }
        })
        .collect();
    vec![first, last]
}

/// Whether a file system of `format` can start with a tree of files in it (the
/// mkfs takes a source directory).
fn takes_tree(format: FsFormat) -> bool {
    matches!(format, FsFormat::Btrfs | FsFormat::Ext4)
}

/// Checks, before anything is written, that firstboot can make the file system a
/// new partition's definition asks for.
pub fn check_creatable(d: &PartitionDefinition) -> Result<(), String> {
    let label = d.label.clone().unwrap_or_else(|| d.kind.to_string());
    let populated = !d.make_directories.is_empty() || !d.make_symlinks.is_empty();
    match d.format {
        Some(f @ (FsFormat::Erofs | FsFormat::Squashfs)) => Err(format!(
            "the {label} definition has Format={f}, a read-only image format that is built, \
             not made empty: firstboot cannot create it"
        )),
        None if populated => Err(format!(
            "the {label} definition has MakeDirectories= or MakeSymlinks= but no Format=: \
             there is no file system to make them in"
        )),
        Some(f) if populated && !takes_tree(f) => Err(format!(
            "the {label} definition has MakeDirectories= or MakeSymlinks= with Format={f}, \
             whose mkfs cannot start from a directory (btrfs and ext4 can)"
        )),
        _ => Ok(()),
    }
}

/// The longest label each file system stores, in bytes.
fn label_limit(format: FsFormat) -> usize {
    match format {
        FsFormat::Btrfs => 255,
        FsFormat::Ext4 | FsFormat::Swap => 16,
        FsFormat::Xfs => 12,
        FsFormat::Vfat => 11,
        FsFormat::Erofs | FsFormat::Squashfs => 16,
    }
}

/// The partition label cut to what the file system stores: mkfs.xfs refuses a
/// longer one, and it would fail only after the partition table was written.
pub fn fs_label(format: FsFormat, label: &str) -> String {
    let limit = label_limit(format);
    let mut end = label.len().min(limit);
    while !label.is_char_boundary(end) {
        end -= 1;
    }
    label[..end].to_owned()
}

/// The device-mapper name an encrypted partition is opened under while it is
/// formatted: `osimage-fb-<label>`, in the characters dm names allow.
pub fn dm_name(label: &str) -> String {
    let clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // DM_NAME_LEN is 128 with the NUL.
    let mut name = format!("osimage-fb-{clean}");
    name.truncate(127);
    name
}

/// The mkfs invocation for `format` on `device`, starting from `tree` when given.
pub fn mkfs_command(
    format: FsFormat,
    label: &str,
    device: &Path,
    tree: Option<&Path>,
) -> Result<Command, String> {
    if tree.is_some() && !takes_tree(format) {
        return Err(format!("mkfs for {format} cannot start from a directory"));
    }
    let label = fs_label(format, label);
    let mut c;
    match format {
        FsFormat::Btrfs => {
            c = Command::new("mkfs.btrfs");
            c.args(["-f", "-L", &label]);
            if let Some(t) = tree {
                c.arg("--rootdir").arg(t);
            }
        }
        FsFormat::Ext4 => {
            c = Command::new("mkfs.ext4");
            c.args(["-q", "-F", "-L", &label]);
            if let Some(t) = tree {
                c.arg("-d").arg(t);
            }
        }
        FsFormat::Xfs => {
            c = Command::new("mkfs.xfs");
            c.args(["-f", "-L", &label]);
        }
        FsFormat::Vfat => {
            c = Command::new("mkfs.vfat");
            c.args(["-n", &label]);
        }
        FsFormat::Swap => {
            c = Command::new("mkswap");
            c.args(["-L", &label]);
        }
        FsFormat::Erofs | FsFormat::Squashfs => {
            return Err(format!(
                "{format} is an image format; firstboot cannot make one"
            ));
        }
    }
    c.arg(device);
    Ok(c)
}

/// The package that ships each mkfs, for the error when it is missing.
fn package(format: FsFormat) -> &'static str {
    match format {
        FsFormat::Btrfs => "btrfs-progs",
        FsFormat::Ext4 => "e2fsprogs",
        FsFormat::Xfs => "xfsprogs",
        FsFormat::Vfat => "dosfstools",
        FsFormat::Swap => "util-linux",
        FsFormat::Erofs => "erofs-utils",
        FsFormat::Squashfs => "squashfs-tools",
    }
}

/// Runs mkfs for `format` on `device`.
pub fn run_mkfs(
    format: FsFormat,
    label: &str,
    device: &Path,
    tree: Option<&Path>,
) -> Result<(), FormatError> {
    let mut cmd = mkfs_command(format, label, device, tree).map_err(|what| FormatError::Tool {
        command: format!("mkfs {format}"),
        why: what,
    })?;
    let shown = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    tracing::info!("{shown}");
    let out = cmd.output().map_err(|e| FormatError::Tool {
        command: shown.clone(),
        why: format!("{e} (the initrd needs {})", package(format)),
    })?;
    if !out.status.success() {
        return Err(FormatError::Tool {
            command: shown,
            why: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Lays `dirs` and `links` into `root`, the directory a new file system starts
/// from. Directories are 0755 (as systemd-repart makes them), and so are the parents
/// a symlink needs.
pub fn build_tree(root: &Path, dirs: &[String], links: &[MakeSymlink]) -> io::Result<()> {
    let inside = |p: &str| root.join(p.trim_start_matches('/'));
    let mode = std::fs::Permissions::from_mode(0o755);
    // The root becomes the file system's root directory, whatever mode a temporary
    // directory was made with.
    std::fs::set_permissions(root, mode.clone())?;
    let make_dir = |dir: &Path| -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut d = dir;
        while d != root {
            std::fs::set_permissions(d, mode.clone())?;
            d = d.parent().unwrap_or(root);
        }
        Ok(())
    };
    for d in dirs {
        make_dir(&inside(d))?;
    }
    for l in links {
        let at = inside(&l.path);
        if let Some(parent) = at.parent() {
            make_dir(parent)?;
        }
        std::os::unix::fs::symlink(&l.target, &at)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::partition::Encrypt;
    use crate::gpt::PartitionType;

    fn planned(label: &str, format: Option<FsFormat>, b_slot: bool) -> PlannedPartition {
        PlannedPartition {
            kind: PartitionType::Root,
            label: label.into(),
            first_lba: 2048,
            last_lba: 4095,
            offset: 1 << 20,
            size: 1 << 20,
            encrypt: Encrypt::Tpm2,
            integrity: None,
            format,
            make_directories: Vec::new(),
            make_symlinks: Vec::new(),
            attributes: 0,
            b_slot,
        }
    }

    fn args(c: &Command) -> Vec<String> {
        std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn partitions_to_format_enter_the_table_marked_for_reset_first() {
        let p = vec![
            planned("_empty", Some(FsFormat::Erofs), true),
            planned("root", Some(FsFormat::Btrfs), false),
            planned("home", None, false),
            planned("swap", Some(FsFormat::Swap), false),
        ];
        assert_eq!(
            label_phases(&p, true),
            [
                vec!["_empty", RESET_LABEL, "home", RESET_LABEL],
                vec!["_empty", "root", "home", "swap"],
            ]
        );
        // An image file is not formatted: one table write, final labels.
        assert_eq!(
            label_phases(&p, false),
            [vec!["_empty", "root", "home", "swap"]]
        );
        // Nothing to format: one write even on a block device.
        assert_eq!(label_phases(&p[..1], true), [vec!["_empty"]]);
        assert_eq!(label_phases(&p[2..3], true), [vec!["home"]]);
    }

    #[test]
    fn mkfs_command_lines() {
        let dev = Path::new("/dev/mapper/osimage-fb-root");
        let tree = Path::new("/run/osimage/tree");
        let c = mkfs_command(FsFormat::Btrfs, "root", dev, Some(tree)).unwrap();
        assert_eq!(
            args(&c),
            [
                "mkfs.btrfs",
                "-f",
                "-L",
                "root",
                "--rootdir",
                "/run/osimage/tree",
                "/dev/mapper/osimage-fb-root"
            ]
        );
        let c = mkfs_command(FsFormat::Ext4, "root", Path::new("/dev/sda8"), Some(tree)).unwrap();
        assert_eq!(
            args(&c),
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-L",
                "root",
                "-d",
                "/run/osimage/tree",
                "/dev/sda8"
            ]
        );
        let c = mkfs_command(FsFormat::Ext4, "home", Path::new("/dev/sda9"), None).unwrap();
        assert_eq!(
            args(&c),
            ["mkfs.ext4", "-q", "-F", "-L", "home", "/dev/sda9"]
        );
        let c = mkfs_command(FsFormat::Xfs, "a-long-xfs-label", dev, None).unwrap();
        assert_eq!(args(&c)[1..4], ["-f", "-L", "a-long-xfs-l"]);
        let c = mkfs_command(FsFormat::Vfat, "data", dev, None).unwrap();
        assert_eq!(args(&c)[..3], ["mkfs.vfat", "-n", "data"]);
        let c = mkfs_command(FsFormat::Swap, "swap", dev, None).unwrap();
        assert_eq!(
            args(&c),
            ["mkswap", "-L", "swap", "/dev/mapper/osimage-fb-root"]
        );
        assert!(mkfs_command(FsFormat::Swap, "swap", dev, Some(tree)).is_err());
        assert!(mkfs_command(FsFormat::Erofs, "usr", dev, None).is_err());
    }

    #[test]
    fn labels_fit_the_file_system_and_dm_names_are_clean() {
        assert_eq!(fs_label(FsFormat::Ext4, "root"), "root");
        assert_eq!(
            fs_label(FsFormat::Ext4, "a-label-of-twenty-chars"),
            "a-label-of-twent"
        );
        assert_eq!(fs_label(FsFormat::Vfat, "ééééééé"), "ééééé");
        assert_eq!(dm_name("root"), "osimage-fb-root");
        assert_eq!(dm_name("my home/1"), "osimage-fb-my_home_1");
        assert_eq!(dm_name(&"x".repeat(200)).len(), 127);
    }

    #[test]
    fn definitions_firstboot_cannot_format_are_refused() {
        let mut d = PartitionDefinition::new(PartitionType::Root);
        assert!(check_creatable(&d).is_ok());
        d.make_directories = vec!["/usr".into()];
        let e = check_creatable(&d).unwrap_err();
        assert!(e.contains("no Format="), "{e}");
        d.format = Some(FsFormat::Btrfs);
        assert!(check_creatable(&d).is_ok());
        d.format = Some(FsFormat::Ext4);
        assert!(check_creatable(&d).is_ok());
        for f in [FsFormat::Xfs, FsFormat::Vfat, FsFormat::Swap] {
            d.format = Some(f);
            let e = check_creatable(&d).unwrap_err();
            assert!(e.contains("cannot start from a directory"), "{e}");
        }
        d.make_directories.clear();
        assert!(check_creatable(&d).is_ok(), "xfs without a tree is fine");
        d.format = Some(FsFormat::Erofs);
        let e = check_creatable(&d).unwrap_err();
        assert!(e.contains("read-only image format"), "{e}");
    }

    #[test]
    fn the_tree_holds_the_directories_and_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("tree");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        let links: Vec<MakeSymlink> = ["/bin:usr/bin", "/lib:usr/lib", "/etc/mtab:../proc/mounts"]
            .iter()
            .map(|l| l.parse().unwrap())
            .collect();
        build_tree(&root, &["/usr".into(), "/var/lib".into()], &links).unwrap();
        let mode = |p: &str| {
            std::fs::metadata(root.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode(""), 0o755);
        assert_eq!(mode("usr"), 0o755);
        assert_eq!(mode("var"), 0o755);
        assert_eq!(mode("var/lib"), 0o755);
        assert_eq!(mode("etc"), 0o755);
        assert_eq!(
            std::fs::read_link(root.join("lib")).unwrap(),
            Path::new("usr/lib")
        );
        assert_eq!(
            std::fs::read_link(root.join("etc/mtab")).unwrap(),
            Path::new("../proc/mounts")
        );
        let mut names: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["bin", "etc", "lib", "usr", "var"]);
    }

    /// The appliance's root gets what a boot into an empty root needs (systemd 252
    /// executes /lib/systemd/systemd after switching root).
    #[test]
    fn the_shipped_definitions_can_be_formatted() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/appliance/firstboot.d");
        let defs = crate::definition::repart_conf::load_dir(&dir).unwrap();
        for d in defs
            .iter()
            .filter(|d| d.verity == crate::definition::VerityRole::Off)
        {
            if d.kind != PartitionType::Esp {
                check_creatable(d).unwrap();
            }
        }
        let root = defs.iter().find(|d| d.kind == PartitionType::Root).unwrap();
        assert_eq!(root.format, Some(FsFormat::Btrfs));
        for dir in [
            "/usr", "/etc", "/var", "/proc", "/sys", "/dev", "/run", "/tmp",
        ] {
            assert!(root.make_directories.iter().any(|d| d == dir), "{dir}");
        }
        let lib = root
            .make_symlinks
            .iter()
            .find(|l| l.path == "/lib")
            .unwrap();
        assert_eq!(lib.target, "usr/lib");
    }

    /// The ext4 command line and the tree, for real: e2fsprogs is on every Debian
    /// system (mkfs.ext4 formats an image file as readily as a partition), and
    /// debugfs reads the result back without mounting it.
    #[test]
    fn mkfs_ext4_lays_the_tree_into_the_file_system() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("tree");
        std::fs::create_dir(&root).unwrap();
        let links: Vec<MakeSymlink> = ["/lib:usr/lib", "/bin:usr/bin"]
            .iter()
            .map(|l| l.parse().unwrap())
            .collect();
        build_tree(&root, &["/usr".into(), "/var".into()], &links).unwrap();
        let img = t.path().join("fs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        run_mkfs(FsFormat::Ext4, "root", &img, Some(&root)).unwrap();
        let debugfs = |req: &str| {
            let out = Command::new("debugfs")
                .args(["-R", req])
                .arg(&img)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let listing = debugfs("ls -l /");
        for name in ["usr", "var", "lib", "bin"] {
            assert!(listing.contains(name), "{name} missing:\n{listing}");
        }
        let lib = debugfs("stat /lib");
        assert!(
            lib.contains("Type: symlink") && lib.contains("Fast link dest: \"usr/lib\""),
            "{lib}"
        );
        let label = Command::new("blkid")
            .args(["-s", "LABEL", "-o", "value"])
            .arg(&img)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "root");
        let e = run_mkfs(FsFormat::Ext4, "root", &t.path().join("absent/x"), None).unwrap_err();
        assert!(
            e.to_string().starts_with("`mkfs.ext4 -q -F -L root "),
            "{e}"
        );
    }
}
