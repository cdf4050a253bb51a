//! systemd `repart.d/*.conf` files, read into the same [`PartitionDefinition`]s as
//! `image.toml`, so a systemd-repart user brings definitions unchanged.

use std::path::{Path, PathBuf};

use super::DefinitionError;
use super::partition::{
    Encrypt, Flags, FsFormat, Integrity, IntegrityAlgorithm, MakeSymlink, PartitionDefinition,
    Size, VerityRole, check_inside_path,
};

/// Keys systemd-repart knows that change nothing in an image osimage builds (they
/// steer growing an existing disk, or are cosmetic); they are accepted with a warning.
const IGNORED: &[&str] = &[
    "Priority",
    "Weight",
    "PaddingWeight",
    "PaddingMinBytes",
    "PaddingMaxBytes",
    "NoAuto",
    "MountPoint",
    "EncryptedVolume",
];

fn parse_bool(v: &str) -> Result<bool, String> {
    super::parse_boolean(v).ok_or_else(|| format!("`{v}` is not a boolean"))
}

/// Where one `.conf` file set each key, for errors found once every file is read
/// (rules across partitions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLines {
    pub file: PathBuf,
    lines: Vec<(String, usize)>,
}

impl KeyLines {
    /// The line that last set `key` (the one that took effect).
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.lines.iter().rev().find(|(k, _)| k == key).map(|l| l.1)
    }
}

/// Parses one `.conf` file's text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<PartitionDefinition, DefinitionError> {
    parse_located(text, path).map(|(def, _)| def)
}

/// [`parse`], also returning where each key was set.
pub fn parse_located(
    text: &str,
    path: &Path,
) -> Result<(PartitionDefinition, KeyLines), DefinitionError> {
    let mut located = KeyLines {
        file: path.to_owned(),
        lines: Vec::new(),
    };
    let mut def: Option<PartitionDefinition> = None;
    let mut pending: Vec<(usize, String, String)> = Vec::new();
    let mut section = String::new();
    let err = |line: usize, key: &str, message: String| DefinitionError::At {
        file: path.to_owned(),
        line,
        key: key.to_owned(),
        message,
    };
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(
                line_no,
                "",
                format!("expected Key=Value, got `{line}`"),
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if section != "Partition" {
            return Err(err(
                line_no,
                key,
                format!("key outside a [Partition] section (in [{section}])"),
            ));
        }
        located.lines.push((key.to_owned(), line_no));
        if key == "Type" {
            let kind = value
                .parse()
                .map_err(|e: crate::gpt::types::UnknownType| err(line_no, key, e.to_string()))?;
            def = Some(PartitionDefinition::new(kind));
        } else {
            pending.push((line_no, key.to_owned(), value.to_owned()));
        }
    }
    let mut def = def.ok_or_else(|| err(1, "Type", "no Type= in [Partition]".into()))?;
    let mut integrity_line = None;
    for (line_no, key, value) in pending {
        let bad = |m: String| err(line_no, &key, m);
        match key.as_str() {
            "Label" => def.label = Some(value),
            "SizeMinBytes" => def.size_min_bytes = Some(value.parse::<Size>().map_err(bad)?),
            "SizeMaxBytes" => def.size_max_bytes = Some(value.parse::<Size>().map_err(bad)?),
            "Format" => def.format = Some(value.parse::<FsFormat>().map_err(bad)?),
            "CopyFiles" => def
                .copy_files
                .extend(value.split_whitespace().map(str::to_owned)),
            "MakeDirectories" => {
                for dir in value.split_whitespace() {
                    check_inside_path(dir).map_err(bad)?;
                    def.make_directories.push(dir.to_owned());
                }
            }
            "MakeSymlinks" => {
                for link in value.split_whitespace() {
                    def.make_symlinks
                        .push(link.parse::<MakeSymlink>().map_err(bad)?);
                }
            }
            "Verity" => def.verity = value.parse::<VerityRole>().map_err(bad)?,
            "VerityMatchKey" => def.verity_match_key = Some(value),
            "VerityDataBlockSizeBytes" => {
                def.verity_data_block_size_bytes = Some(value.parse::<Size>().map_err(bad)?)
            }
            "VerityHashBlockSizeBytes" => {
                def.verity_hash_block_size_bytes = Some(value.parse::<Size>().map_err(bad)?)
            }
            "FactoryReset" => def.factory_reset = parse_bool(&value).map_err(bad)?,
            "Encrypt" => def.encrypt = value.parse::<Encrypt>().map_err(bad)?,
            "Integrity" => {
                def.integrity = value.parse::<Integrity>().map_err(bad)?;
                integrity_line = Some(line_no);
            }
            "IntegrityAlgorithm" => {
                def.integrity_algorithm = Some(value.parse::<IntegrityAlgorithm>().map_err(bad)?)
            }
            "Flags" => def.flags = Some(value.parse::<Flags>().map_err(bad)?),
            "ReadOnly" => def.read_only = Some(parse_bool(&value).map_err(bad)?),
            "GrowFileSystem" => def.grow_file_system = Some(parse_bool(&value).map_err(bad)?),
            k if IGNORED.contains(&k) => {
                tracing::warn!(
                    "{}:{line_no}: {k}= has no effect on a built image; ignored",
                    path.display()
                );
            }
            _ => return Err(bad("unknown or unsupported repart key".into())),
        }
    }
    if let (Some(line), Some(_), Encrypt::Off) = (integrity_line, def.integrity(), def.encrypt) {
        return Err(err(
            line,
            "Integrity",
            super::partition::INTEGRITY_NEEDS_ENCRYPT.into(),
        ));
    }
    Ok((def, located))
}

/// Reads every `*.conf` in `dir`, in lexical order (repart's order).
pub fn load_dir(dir: &Path) -> Result<Vec<PartitionDefinition>, DefinitionError> {
    Ok(load_dir_located(dir)?.into_iter().map(|(d, _)| d).collect())
}

/// [`load_dir`], also returning where each file set each key.
pub fn load_dir_located(
    dir: &Path,
) -> Result<Vec<(PartitionDefinition, KeyLines)>, DefinitionError> {
    let read_err = |path: PathBuf, source| DefinitionError::Read { path, source };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| read_err(dir.to_owned(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).map_err(|e| read_err(f.clone(), e))?;
            parse_located(&text, f)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt::PartitionType;

    #[test]
    fn repart_files_parse() {
        let d = parse(
            "# usr\n[Partition]\nType=usr\nLabel=%o_%A\nFormat=erofs\nVerity=data\nVerityMatchKey=usr\nSizeMinBytes=256M\nCopyFiles=/usr:/\nPriority=1\n",
            Path::new("10-usr.conf"),
        )
        .unwrap();
        assert_eq!(d.kind, PartitionType::Usr);
        assert_eq!(d.format, Some(FsFormat::Erofs));
        assert_eq!(d.verity, VerityRole::Data);
        assert_eq!(d.size_min_bytes, Some(Size(256 << 20)));
        assert_eq!(d.copy_files, ["/usr:/"]);
    }

    #[test]
    fn make_directories_and_make_symlinks_accumulate() {
        let d = parse(
            "[Partition]\nType=root\nFormat=ext4\nMakeDirectories=/usr /etc\nMakeDirectories=/var\n\
             MakeSymlinks=/bin:usr/bin /lib:usr/lib\n",
            Path::new("50-root.conf"),
        )
        .unwrap();
        assert_eq!(d.make_directories, ["/usr", "/etc", "/var"]);
        let links: Vec<String> = d.make_symlinks.into_iter().map(String::from).collect();
        assert_eq!(links, ["/bin:usr/bin", "/lib:usr/lib"]);
        let e = parse(
            "[Partition]\nType=root\nMakeDirectories=usr\n",
            Path::new("x.conf"),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("x.conf:3: key `MakeDirectories`"),
            "{e}"
        );
        let e = parse(
            "[Partition]\nType=root\nMakeSymlinks=/bin\n",
            Path::new("x.conf"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("PATH:TARGET"), "{e}");
    }

    #[test]
    fn integrity_is_inline_in_an_encrypted_volume() {
        let d = parse(
            "[Partition]\nType=home\nEncrypt=tpm2\nIntegrity=inline\nIntegrityAlgorithm=hmac-sha512\n",
            Path::new("60-home.conf"),
        )
        .unwrap();
        assert_eq!(d.integrity(), Some(IntegrityAlgorithm::HmacSha512));
        let e = parse(
            "[Partition]\nType=home\nIntegrity=inline\n",
            Path::new("60-home.conf"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("60-home.conf:3: key `Integrity`: Integrity=inline needs Encrypt="),
            "{e}"
        );
        let e = parse(
            "[Partition]\nType=home\nEncrypt=tpm2\nIntegrity=external\n",
            Path::new("x.conf"),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("x.conf:4: key `Integrity`"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse(
            "[Partition]\nType=usr\nFormat=zfs\n",
            Path::new("/r/10-usr.conf"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/r/10-usr.conf:3: key `Format`: unknown Format `zfs` (vfat, erofs, squashfs, ext4, btrfs, xfs, swap)"
        );
        let e = parse("[Partition]\nType=banana\n", Path::new("x.conf")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x.conf:2: key `Type`: unknown partition type"),
            "{e}"
        );
        let e = parse("[Partition]\nType=esp\nColour=red\n", Path::new("x.conf")).unwrap_err();
        assert!(e.to_string().starts_with("x.conf:3: key `Colour`"), "{e}");
        let e = parse("[Partition]\nLabel=x\n", Path::new("x.conf")).unwrap_err();
        assert!(e.to_string().contains("no Type="), "{e}");
    }
}
