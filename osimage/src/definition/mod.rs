//! `image.toml`: what an image is made of. See `config/appliance/image.toml` for the
//! commented example; partitions come from `[[partition]]` tables or from a
//! systemd `repart.d` directory.

pub mod partition;
pub mod repart_conf;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use partition::{FsFormat, MakeSymlink, PartitionDefinition, Size, VerityRole};

/// systemd's `parse_boolean`: the spellings every systemd config and switch accepts,
/// in any case.
pub fn parse_boolean(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

use crate::gpt::PartitionType;

#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Toml(#[from] tessera_config::ConfigError),
    #[error("{}:{line}: key `{key}`: {message}", file.display())]
    At {
        file: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{}: {message}", file.display())]
    Invalid { file: PathBuf, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageSection {
    /// OS name; labels are `<name>_<version>`.
    pub name: String,
    pub version: String,
    /// Salts, file system UUIDs and partition UUIDs derive from this.
    pub seed: String,
    #[serde(default = "default_sector")]
    pub sector_size: u32,
}

fn default_sector() -> u32 {
    512
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UsrSection {
    /// The tree that becomes /usr (its top level holds bin/, lib/, share/ …).
    pub tree: PathBuf,
    #[serde(default)]
    pub allow_non_hermetic: bool,
    /// More content laid over the tree, as mkosi's `ExtraTrees=`: `SOURCE:TARGET`,
    /// TARGET being a path inside /usr.
    #[serde(default)]
    pub extra_trees: Vec<ExtraTree>,
}

/// `SOURCE:TARGET`: the file or directory SOURCE (relative to image.toml) copied to
/// TARGET inside /usr, over what the tree has there.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ExtraTree {
    pub source: PathBuf,
    /// Relative to /usr, without `..`: `lib/osimage/repart.d`.
    pub target: PathBuf,
}

impl TryFrom<String> for ExtraTree {
    type Error = String;
    fn try_from(s: String) -> Result<ExtraTree, String> {
        let (source, target) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not SOURCE:TARGET"))?;
        let target = Path::new(target.trim_start_matches('/'));
        if source.is_empty()
            || target
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!(
                "`{s}`: SOURCE must be given, and TARGET must be a path inside /usr without `..`"
            ));
        }
        Ok(ExtraTree {
            source: PathBuf::from(source),
            target: target.to_owned(),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UkiSection {
    /// systemd's `linuxx64.efi.stub`.
    pub stub: PathBuf,
    pub kernel: PathBuf,
    #[serde(default)]
    pub initrd: Vec<PathBuf>,
    pub os_release: PathBuf,
    /// Extra kernel command line; `usrhash=` is added automatically.
    #[serde(default)]
    pub cmdline: String,
    #[serde(default)]
    pub splash: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BootSection {
    /// `systemd-bootx64.efi`.
    pub systemd_boot: PathBuf,
    /// loader.conf contents written to the ESP.
    #[serde(default = "default_loader_conf")]
    pub loader_conf: String,
    /// Boot counting for the shipped UKI: installed as `<name>_<version>+<tries>.efi`,
    /// systemd-boot counts it down until `osimage boot bless` drops the counter.
    #[serde(default)]
    pub tries: Option<u32>,
}

fn default_loader_conf() -> String {
    "timeout 3\neditor no\n".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SigningSection {
    pub verity_key: PathBuf,
    pub verity_cert: PathBuf,
    /// Key that signs the PCR 11 policies (`.pcrsig`); its public half becomes
    /// `.pcrpkey`. Without it the UKI carries neither.
    #[serde(default)]
    pub pcr_key: Option<PathBuf>,
}

/// The whole `image.toml`. Relative paths are relative to the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageDefinition {
    pub image: ImageSection,
    pub usr: UsrSection,
    pub uki: UkiSection,
    pub boot: BootSection,
    #[serde(default)]
    pub signing: Option<SigningSection>,
    /// A systemd repart.d directory, instead of `[[partition]]`.
    #[serde(default)]
    pub repart_d: Option<PathBuf>,
    #[serde(default, rename = "partition")]
    pub partitions: Vec<PartitionDefinition>,
    #[serde(skip)]
    pub source: PathBuf,
}

impl ImageDefinition {
    pub fn load(path: &Path) -> Result<ImageDefinition, DefinitionError> {
        let mut def: ImageDefinition = tessera_config::load(path)?;
        def.source = path.to_owned();
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut def.usr.tree);
        for t in &mut def.usr.extra_trees {
            abs(&mut t.source);
        }
        abs(&mut def.uki.stub);
        abs(&mut def.uki.kernel);
        abs(&mut def.uki.os_release);
        def.uki.initrd.iter_mut().for_each(abs);
        if let Some(s) = def.uki.splash.as_mut() {
            abs(s);
        }
        abs(&mut def.boot.systemd_boot);
        if let Some(s) = def.signing.as_mut() {
            abs(&mut s.verity_key);
            abs(&mut s.verity_cert);
            if let Some(k) = s.pcr_key.as_mut() {
                abs(k);
            }
        }
        if let Some(dir) = def.repart_d.as_mut() {
            abs(dir);
            if !def.partitions.is_empty() {
                return Err(def.invalid("give either repart-d or [[partition]], not both"));
            }
            def.partitions = repart_conf::load_dir(dir)?;
        }
        def.validate()?;
        Ok(def)
    }

    fn invalid(&self, message: &str) -> DefinitionError {
        DefinitionError::Invalid {
            file: self.source.clone(),
            message: message.to_owned(),
        }
    }

    /// Cross-partition rules that a single key cannot express.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        if self.image.sector_size != 512 && self.image.sector_size != 4096 {
            return Err(self.invalid("image.sector-size must be 512 or 4096"));
        }
        if self.image.name.is_empty() || self.image.name.contains(['_', '/', ' ']) {
            return Err(self.invalid("image.name must be non-empty without `_`, `/` or spaces"));
        }
        if self.image.version.is_empty() || self.image.version.contains(['_', '/', ' ', '+']) {
            return Err(
                self.invalid("image.version must be non-empty without `_`, `/`, `+` or spaces")
            );
        }
        if self.partitions.is_empty() {
            return Err(self.invalid("no partitions defined"));
        }
        let count = |t: PartitionType| self.partitions.iter().filter(|p| p.kind == t).count();
        if count(PartitionType::Esp) != 1 {
            return Err(self.invalid("exactly one esp partition is needed"));
        }
        if count(PartitionType::Usr) != 1 {
            return Err(self.invalid("exactly one usr partition is needed"));
        }
        for p in &self.partitions {
            if let (Some(min), Some(max)) = (p.size_min_bytes, p.size_max_bytes)
                && min > max
            {
                return Err(self.invalid(&format!(
                    "{} partition: SizeMinBytes > SizeMaxBytes",
                    p.kind
                )));
            }
            let role_ok = match p.verity {
                VerityRole::Off => true,
                VerityRole::Data => p.kind == PartitionType::Usr,
                VerityRole::Hash => p.kind == PartitionType::UsrVerity,
                VerityRole::Signature => p.kind == PartitionType::UsrVeritySig,
            };
            if !role_ok {
                return Err(self.invalid(&format!(
                    "{} partition cannot have Verity={:?}",
                    p.kind, p.verity
                )));
            }
            if p.integrity().is_some() && p.encrypt == partition::Encrypt::Off {
                return Err(self.invalid(&format!(
                    "{} partition: {}",
                    p.kind,
                    partition::INTEGRITY_NEEDS_ENCRYPT
                )));
            }
            if p.verity != VerityRole::Off && p.verity_match_key.as_deref() != Some("usr") {
                return Err(self.invalid(&format!(
                    "{} partition: VerityMatchKey must be `usr`",
                    p.kind
                )));
            }
        }
        if count(PartitionType::UsrVeritySig) == 1 && self.signing.is_none() {
            return Err(self.invalid("a usr-verity-sig partition needs a [signing] section"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/appliance")
    }

    #[test]
    fn the_shipped_example_parses_and_matches_its_repart_d() {
        let def = ImageDefinition::load(&shipped().join("image.toml")).unwrap();
        assert_eq!(def.image.name, "tessera");
        assert_eq!(def.partitions.len(), 4);
        assert!(def.uki.kernel.is_absolute());
        let from_repart = repart_conf::load_dir(&shipped().join("repart.d")).unwrap();
        assert_eq!(def.partitions, from_repart);
        // The image ships firstboot's definitions where firstboot looks for them.
        let extra = &def.usr.extra_trees[0];
        assert!(extra.source.join("50-root.conf").is_file(), "{extra:?}");
        assert_eq!(extra.target, Path::new("lib/osimage/repart.d"));
    }

    #[test]
    fn extra_trees_are_source_colon_a_path_inside_usr() {
        let t = ExtraTree::try_from("a/b:/lib/x".to_owned()).unwrap();
        assert_eq!(t.source, Path::new("a/b"));
        assert_eq!(t.target, Path::new("lib/x"));
        assert_eq!(
            ExtraTree::try_from("a:share".to_owned()).unwrap().target,
            Path::new("share")
        );
        // `/` lays a tree over /usr itself.
        assert_eq!(
            ExtraTree::try_from("a:/".to_owned()).unwrap().target,
            Path::new("")
        );
        for bad in ["a", ":lib", "a:../etc", "a:lib/../../x", "a:./x"] {
            assert!(ExtraTree::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(shipped().join("image.toml")).unwrap();
        let path = dir.path().join("image.toml");
        std::fs::write(
            &path,
            text.replace("SizeMinBytes = \"1G\"", "SizeMinBytes = \"1Q\""),
        )
        .unwrap();
        let e = ImageDefinition::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("image.toml:") && e.contains("key `partition[1].SizeMinBytes`"),
            "{e}"
        );
        assert!(e.contains("bad size suffix"), "{e}");
        std::fs::write(
            &path,
            text.replace("sector-size = 512", "sector-size = 1024"),
        )
        .unwrap();
        let e = ImageDefinition::load(&path).unwrap_err().to_string();
        assert!(e.contains("sector-size must be 512 or 4096"), "{e}");
        // Integrity is checked like the other keys, and needs a LUKS2 volume.
        let home = "\n[[partition]]\nType = \"home\"\nIntegrity = \"inline\"\n";
        std::fs::write(&path, format!("{text}{home}IntegrityAlgorithm = \"crc\"\n")).unwrap();
        let e = ImageDefinition::load(&path).unwrap_err().to_string();
        assert!(e.contains("IntegrityAlgorithm"), "{e}");
        std::fs::write(&path, format!("{text}{home}")).unwrap();
        let e = ImageDefinition::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("home partition: Integrity=inline needs Encrypt="),
            "{e}"
        );
        std::fs::write(&path, format!("{text}{home}Encrypt = \"tpm2\"\n")).unwrap();
        let d = ImageDefinition::load(&path).unwrap();
        let home = d.partitions.last().unwrap();
        assert_eq!(
            home.integrity(),
            Some(partition::IntegrityAlgorithm::HmacSha256)
        );
    }
}
