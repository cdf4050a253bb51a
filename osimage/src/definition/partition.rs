//! Partition definitions in systemd-repart's vocabulary, shared by `image.toml`'s
//! `[[partition]]` tables and `repart.d/*.conf` files.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::gpt::{ATTR_GROW_FILE_SYSTEM, ATTR_READ_ONLY, PartitionType};

/// A byte size as repart writes it: a number with an optional K, M, G or T suffix
/// (powers of 1024), e.g. `64M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (num, mult) = match s.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => {
                let mult: u64 = match c.to_ascii_uppercase() {
                    'B' => 1,
                    'K' => 1 << 10,
                    'M' => 1 << 20,
                    'G' => 1 << 30,
                    'T' => 1 << 40,
                    _ => return Err(format!("bad size suffix in `{s}` (use K, M, G or T)")),
                };
                (&s[..i], mult)
            }
            _ => (s, 1),
        };
        let n: u64 = num
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a size (e.g. 4096, 64M, 2G)"))?;
        n.checked_mul(mult)
            .map(Size)
            .ok_or_else(|| format!("size `{s}` overflows"))
    }
}

/// A value TOML may give as a number or as a string to parse (`4096` or `"4K"`).
fn number_or_parsed<'de, D, T>(d: D, from_number: fn(u64) -> T) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: FromStr<Err = String>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(from_number(n)),
        Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_parsed(d, Size)
    }
}

/// `Format=`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsFormat {
    Vfat,
    Erofs,
    Squashfs,
    Ext4,
    Btrfs,
    Xfs,
    Swap,
}

impl FromStr for FsFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "vfat" => FsFormat::Vfat,
            "erofs" => FsFormat::Erofs,
            "squashfs" => FsFormat::Squashfs,
            "ext4" => FsFormat::Ext4,
            "btrfs" => FsFormat::Btrfs,
            "xfs" => FsFormat::Xfs,
            "swap" => FsFormat::Swap,
            _ => {
                return Err(format!(
                    "unknown Format `{s}` (vfat, erofs, squashfs, ext4, btrfs, xfs, swap)"
                ));
            }
        })
    }
}

impl fmt::Display for FsFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsFormat::Vfat => "vfat",
            FsFormat::Erofs => "erofs",
            FsFormat::Squashfs => "squashfs",
            FsFormat::Ext4 => "ext4",
            FsFormat::Btrfs => "btrfs",
            FsFormat::Xfs => "xfs",
            FsFormat::Swap => "swap",
        })
    }
}

/// `Verity=`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VerityRole {
    #[default]
    Off,
    Data,
    Hash,
    Signature,
}

impl FromStr for VerityRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "off" => VerityRole::Off,
            "data" => VerityRole::Data,
            "hash" => VerityRole::Hash,
            "signature" => VerityRole::Signature,
            _ => return Err(format!("unknown Verity `{s}` (off, data, hash, signature)")),
        })
    }
}

/// `Encrypt=`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Encrypt {
    #[default]
    Off,
    KeyFile,
    Tpm2,
    #[serde(rename = "key-file+tpm2")]
    KeyFileTpm2,
}

impl FromStr for Encrypt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "off" | "no" | "false" => Encrypt::Off,
            "key-file" => Encrypt::KeyFile,
            "tpm2" => Encrypt::Tpm2,
            "key-file+tpm2" => Encrypt::KeyFileTpm2,
            _ => {
                return Err(format!(
                    "unknown Encrypt `{s}` (off, key-file, tpm2, key-file+tpm2)"
                ));
            }
        })
    }
}

/// `Integrity=` (systemd 258): dm-integrity under the partition's LUKS2 volume.
/// `inline` keeps the tags in the partition itself and makes dm-crypt an AEAD
/// (encryption plus an HMAC per sector), so tampered or rotted sectors read as I/O
/// errors instead of garbage. It is what the seed asks of home: integrity with a
/// TPM-held key, which systemd-cryptsetup can open unchanged. A keyless standalone
/// dm-integrity would only catch accidents, and systemd-integritysetup cannot
/// fetch its key from a TPM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Integrity {
    #[default]
    Off,
    Inline,
}

impl FromStr for Integrity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" | "no" | "false" => Ok(Integrity::Off),
            "inline" => Ok(Integrity::Inline),
            "external" => Err(
                "Integrity=external (tags on a separate device) is not supported; use inline"
                    .into(),
            ),
            _ => Err(format!("unknown Integrity `{s}` (off, inline)")),
        }
    }
}

/// Why `Integrity=inline` without `Encrypt=` is refused.
pub const INTEGRITY_NEEDS_ENCRYPT: &str = "Integrity=inline needs Encrypt=: the tags are \
    kept by the LUKS2 volume's dm-crypt (an HMAC keyed by its volume key), so there is no \
    integrity without the LUKS2 volume";

/// `IntegrityAlgorithm=`: the keyed hash of each sector's tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum IntegrityAlgorithm {
    HmacSha1,
    #[default]
    HmacSha256,
    HmacSha512,
}

impl IntegrityAlgorithm {
    const ALL: [IntegrityAlgorithm; 3] = [
        IntegrityAlgorithm::HmacSha1,
        IntegrityAlgorithm::HmacSha256,
        IntegrityAlgorithm::HmacSha512,
    ];

    /// The name repart.d uses.
    pub fn name(self) -> &'static str {
        match self {
            IntegrityAlgorithm::HmacSha1 => "hmac-sha1",
            IntegrityAlgorithm::HmacSha256 => "hmac-sha256",
            IntegrityAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }

    /// The name libcryptsetup and `cryptsetup status` use.
    pub fn crypto_name(self) -> &'static str {
        match self {
            IntegrityAlgorithm::HmacSha1 => "hmac(sha1)",
            IntegrityAlgorithm::HmacSha256 => "hmac(sha256)",
            IntegrityAlgorithm::HmacSha512 => "hmac(sha512)",
        }
    }

    /// The HMAC key's length: it is appended to the cipher's key in the LUKS2
    /// volume key, as cryptsetup does.
    pub fn key_bytes(self) -> usize {
        match self {
            IntegrityAlgorithm::HmacSha1 => 20,
            IntegrityAlgorithm::HmacSha256 => 32,
            IntegrityAlgorithm::HmacSha512 => 64,
        }
    }
}

impl FromStr for IntegrityAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IntegrityAlgorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!("unknown IntegrityAlgorithm `{s}` (hmac-sha1, hmac-sha256, hmac-sha512)")
            })
    }
}

impl std::fmt::Display for IntegrityAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// GPT attribute flags as a number; repart takes decimal or `0x` hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Flags(pub u64);

impl FromStr for Flags {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => s.parse(),
        };
        parsed
            .map(Flags)
            .map_err(|_| format!("`{s}` is not a number (decimal or 0x hex)"))
    }
}

impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_parsed(d, Flags)
    }
}

/// Whether `path` is relative and names only children (no root, `.` or `..`), so
/// that joined to a tree it stays inside it.
pub fn is_plain_relative(path: &std::path::Path) -> bool {
    path.components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Checks a path that names something inside a new file system: absolute, and
/// without `.` or `..` (they could climb out of the tree it is built in).
pub fn check_inside_path(path: &str) -> Result<(), String> {
    let below_root = std::path::Path::new(path)
        .strip_prefix("/")
        .is_ok_and(|rest| is_plain_relative(rest) && !rest.as_os_str().is_empty());
    if !below_root {
        return Err(format!(
            "`{path}` must be an absolute path below `/`, without `.` or `..`"
        ));
    }
    Ok(())
}

/// One `MakeSymlinks=` entry, `PATH:TARGET`: the symlink PATH (absolute, inside the
/// new file system) pointing at TARGET, written as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MakeSymlink {
    pub path: String,
    pub target: String,
}

impl FromStr for MakeSymlink {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (path, target) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not PATH:TARGET"))?;
        check_inside_path(path)?;
        if target.is_empty() {
            return Err(format!("`{s}`: the symlink target is empty"));
        }
        Ok(MakeSymlink {
            path: path.to_owned(),
            target: target.to_owned(),
        })
    }
}

impl TryFrom<String> for MakeSymlink {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<MakeSymlink> for String {
    fn from(l: MakeSymlink) -> String {
        format!("{}:{}", l.path, l.target)
    }
}

/// One partition, by repart's keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct PartitionDefinition {
    #[serde(rename = "Type")]
    pub kind: PartitionType,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub size_min_bytes: Option<Size>,
    #[serde(default)]
    pub size_max_bytes: Option<Size>,
    #[serde(default)]
    pub format: Option<FsFormat>,
    #[serde(default)]
    pub copy_files: Vec<String>,
    /// `MakeDirectories=`: absolute paths made (mode 0755) in the new file system.
    #[serde(default)]
    pub make_directories: Vec<String>,
    /// `MakeSymlinks=` (systemd 257): symlinks made in the new file system.
    #[serde(default)]
    pub make_symlinks: Vec<MakeSymlink>,
    #[serde(default)]
    pub verity: VerityRole,
    #[serde(default)]
    pub verity_match_key: Option<String>,
    /// `VerityDataBlockSizeBytes=` (systemd 254), on the `Verity=hash` partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verity_data_block_size_bytes: Option<Size>,
    /// `VerityHashBlockSizeBytes=` (systemd 254), on the `Verity=hash` partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verity_hash_block_size_bytes: Option<Size>,
    #[serde(default)]
    pub factory_reset: bool,
    #[serde(default)]
    pub encrypt: Encrypt,
    #[serde(default)]
    pub integrity: Integrity,
    #[serde(default)]
    pub integrity_algorithm: Option<IntegrityAlgorithm>,
    #[serde(default)]
    pub flags: Option<Flags>,
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub grow_file_system: Option<bool>,
}

impl PartitionDefinition {
    pub fn new(kind: PartitionType) -> PartitionDefinition {
        PartitionDefinition {
            kind,
            label: None,
            size_min_bytes: None,
            size_max_bytes: None,
            format: None,
            copy_files: Vec::new(),
            make_directories: Vec::new(),
            make_symlinks: Vec::new(),
            verity: VerityRole::Off,
            verity_match_key: None,
            verity_data_block_size_bytes: None,
            verity_hash_block_size_bytes: None,
            factory_reset: false,
            encrypt: Encrypt::Off,
            integrity: Integrity::Off,
            integrity_algorithm: None,
            flags: None,
            read_only: None,
            grow_file_system: None,
        }
    }

    /// The tag algorithm of an `Integrity=inline` partition; `None` without one.
    pub fn integrity(&self) -> Option<IntegrityAlgorithm> {
        (self.integrity == Integrity::Inline).then(|| self.integrity_algorithm.unwrap_or_default())
    }

    /// The GPT attributes repart would set: `Flags=` as the base, then ReadOnly
    /// (default on for verity data, hash and signature partitions, as repart does)
    /// and GrowFileSystem.
    pub fn attributes(&self) -> u64 {
        let mut a = self.flags.map_or(0, |f| f.0);
        let read_only = self.read_only.unwrap_or(self.verity != VerityRole::Off);
        if read_only {
            a |= ATTR_READ_ONLY;
        }
        if self.grow_file_system == Some(true) {
            a |= ATTR_GROW_FILE_SYSTEM;
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_repart() {
        assert_eq!("4096".parse::<Size>().unwrap(), Size(4096));
        assert_eq!("64M".parse::<Size>().unwrap(), Size(64 << 20));
        assert_eq!("2G".parse::<Size>().unwrap(), Size(2 << 30));
        assert_eq!("10K".parse::<Size>().unwrap(), Size(10 << 10));
        assert!("12Q".parse::<Size>().is_err());
        assert!("big".parse::<Size>().is_err());
    }

    #[test]
    fn symlinks_are_an_absolute_path_colon_a_target() {
        let l: MakeSymlink = "/lib:usr/lib".parse().unwrap();
        assert_eq!((l.path.as_str(), l.target.as_str()), ("/lib", "usr/lib"));
        let l: MakeSymlink = "/etc/mtab:../proc/self/mounts".parse().unwrap();
        assert_eq!(l.target, "../proc/self/mounts");
        for bad in ["lib:usr/lib", "/lib", "/lib:", "/:x", "/a/../b:x"] {
            assert!(bad.parse::<MakeSymlink>().is_err(), "{bad}");
        }
        assert!(check_inside_path("/usr").is_ok());
        assert!(check_inside_path("/var/lib/x").is_ok());
        for bad in ["usr", "/", "/a/..", "//", ""] {
            assert!(check_inside_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn integrity_takes_repart_values() {
        assert_eq!("inline".parse::<Integrity>().unwrap(), Integrity::Inline);
        assert_eq!("off".parse::<Integrity>().unwrap(), Integrity::Off);
        let e = "external".parse::<Integrity>().unwrap_err();
        assert!(e.contains("not supported"), "{e}");
        assert!("yes".parse::<Integrity>().is_err());
        let a: IntegrityAlgorithm = "hmac-sha512".parse().unwrap();
        assert_eq!((a.crypto_name(), a.key_bytes()), ("hmac(sha512)", 64));
        assert!("crc32c".parse::<IntegrityAlgorithm>().is_err());
        let mut p = PartitionDefinition::new(PartitionType::Home);
        assert_eq!(p.integrity(), None);
        p.integrity = Integrity::Inline;
        assert_eq!(p.integrity(), Some(IntegrityAlgorithm::HmacSha256));
        p.integrity_algorithm = Some(IntegrityAlgorithm::HmacSha1);
        assert_eq!(p.integrity(), Some(IntegrityAlgorithm::HmacSha1));
    }

    #[test]
    fn verity_partitions_are_read_only_by_default() {
        let mut p = PartitionDefinition::new(PartitionType::Usr);
        p.verity = VerityRole::Data;
        assert_eq!(p.attributes(), ATTR_READ_ONLY);
        p.read_only = Some(false);
        p.grow_file_system = Some(true);
        p.flags = Some(Flags(1));
        assert_eq!(p.attributes(), ATTR_GROW_FILE_SYSTEM | 1);
        assert_eq!(
            "0x1000000000000000".parse::<Flags>().unwrap().0,
            ATTR_READ_ONLY
        );
    }
}
