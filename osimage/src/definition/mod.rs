//! `image.toml`: what an image is made of. See `config/appliance/image.toml` for the
//! commented example; partitions come from `[[partition]]` tables or from a
//! systemd `repart.d` directory.

pub mod partition;
pub mod repart_conf;
pub mod specifiers;

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
        if source.is_empty() || !partition::is_plain_relative(target) {
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
    /// image.toml's text, to find where a key is written for an error.
    #[serde(skip)]
    text: String,
    /// Where each partition is defined, in `partitions`' order.
    #[serde(skip)]
    origins: Vec<PartitionOrigin>,
}

/// Where a partition was defined, for errors about it.
#[derive(Debug, Clone)]
enum PartitionOrigin {
    /// `[[partition]]` number N of image.toml.
    Table(usize),
    /// A repart.d file.
    Conf(repart_conf::KeyLines),
}

/// The default verity block size, for data and hash blocks alike.
pub const VERITY_BLOCK_SIZE: u32 = 4096;

impl ImageDefinition {
    pub fn load(path: &Path) -> Result<ImageDefinition, DefinitionError> {
        let text = std::fs::read_to_string(path).map_err(|source| DefinitionError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut def: ImageDefinition = tessera_config::parse(&text, path)?;
        def.source = path.to_owned();
        def.text = text;
        def.origins = (0..def.partitions.len())
            .map(PartitionOrigin::Table)
            .collect();
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
                return Err(def.at_key(
                    "repart-d",
                    "give either repart-d or [[partition]], not both",
                ));
            }
            let dir = dir.clone();
            (def.partitions, def.origins) = repart_conf::load_dir_located(&dir)?
                .into_iter()
                .map(|(p, lines)| (p, PartitionOrigin::Conf(lines)))
                .unzip();
        }
        def.expand_labels()?;
        def.validate()?;
        Ok(def)
    }

    fn invalid(&self, message: &str) -> DefinitionError {
        DefinitionError::Invalid {
            file: self.source.clone(),
            message: message.to_owned(),
        }
    }

    /// An error about an image.toml key (`image.sector-size`).
    fn at_key(&self, key: &str, message: &str) -> DefinitionError {
        let at = tessera_config::locate(&self.text, &self.source, key);
        DefinitionError::At {
            file: at.file,
            line: at.line,
            key: at.key,
            message: message.to_owned(),
        }
    }

    /// An error about partition `index`'s `key`: where the key is written, or where
    /// the partition is defined when the key was left out.
    fn at_partition(&self, index: usize, key: &str, message: &str) -> DefinitionError {
        match self.origins.get(index) {
            Some(PartitionOrigin::Conf(lines)) => DefinitionError::At {
                file: lines.file.clone(),
                line: lines
                    .line_of(key)
                    .or_else(|| lines.line_of("Type"))
                    .unwrap_or(1),
                key: key.to_owned(),
                message: message.to_owned(),
            },
            Some(PartitionOrigin::Table(n)) => {
                self.at_key(&format!("partition[{n}].{key}"), message)
            }
            None => self.invalid(&format!("{key}: {message}")),
        }
    }

    /// Expands repart's specifiers in each `Label=` (see [`specifiers`]).
    fn expand_labels(&mut self) -> Result<(), DefinitionError> {
        let mut values = specifiers::SpecifierValues {
            image_id: self.image.name.clone(),
            image_version: self.image.version.clone(),
            ..Default::default()
        };
        let labels = self
            .partitions
            .iter()
            .any(|p| p.label.as_deref().is_some_and(|l| l.contains('%')));
        if labels {
            // Only read when a label needs it: a missing os-release is reported by
            // the build, with the rest of the UKI's inputs.
            let text = std::fs::read_to_string(&self.uki.os_release).unwrap_or_default();
            values = values.with_os_release(&text);
        }
        for i in 0..self.partitions.len() {
            let Some(label) = self.partitions[i].label.clone() else {
                continue;
            };
            let expanded = specifiers::expand(&label, &values)
                .map_err(|m| self.at_partition(i, "Label", &m))?;
            self.partitions[i].label = Some(expanded);
        }
        Ok(())
    }

    /// The verity data and hash block sizes, from the `Verity=hash` partition.
    pub fn verity_block_sizes(&self) -> (u32, u32) {
        let hash = self
            .partitions
            .iter()
            .find(|p| p.verity == VerityRole::Hash);
        let size = |s: Option<partition::Size>| s.map_or(VERITY_BLOCK_SIZE, |s| s.0 as u32);
        (
            size(hash.and_then(|p| p.verity_data_block_size_bytes)),
            size(hash.and_then(|p| p.verity_hash_block_size_bytes)),
        )
    }

    /// What makes up /usr, in the order it is laid down: the usr partition's
    /// `CopyFiles=` (sources inside the image's /usr, which is `usr.tree`), or the
    /// whole tree; then the extra trees.
    pub fn usr_layers(&self) -> Vec<ExtraTree> {
        let copies = self
            .partitions
            .iter()
            .find(|p| p.kind == PartitionType::Usr)
            .map(|p| p.copy_files.as_slice())
            .unwrap_or_default();
        let mut layers: Vec<ExtraTree> = copies
            .iter()
            .filter_map(|c| usr_copy(c).ok())
            .map(|(source, target)| ExtraTree {
                source: self.usr.tree.join(source),
                target,
            })
            .collect();
        if layers.is_empty() {
            layers.push(ExtraTree {
                source: self.usr.tree.clone(),
                target: PathBuf::new(),
            });
        }
        layers.extend(self.usr.extra_trees.iter().cloned());
        layers
    }

    /// Rules across keys and partitions, checked once everything is read. Each
    /// error names the file, line and key it is about.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        if self.image.sector_size != 512 && self.image.sector_size != 4096 {
            return Err(self.at_key("image.sector-size", "must be 512 or 4096"));
        }
        if self.image.name.is_empty() || self.image.name.contains(['_', '/', ' ']) {
            return Err(self.at_key("image.name", "must be non-empty without `_`, `/` or spaces"));
        }
        if self.image.version.is_empty() || self.image.version.contains(['_', '/', ' ', '+']) {
            return Err(self.at_key(
                "image.version",
                "must be non-empty without `_`, `/`, `+` or spaces",
            ));
        }
        let partitions_key = if self.repart_d.is_some() {
            "repart-d"
        } else {
            "partition"
        };
        if self.partitions.is_empty() {
            return Err(self.at_key(partitions_key, "no partitions defined"));
        }
        for (kind, name) in [(PartitionType::Esp, "esp"), (PartitionType::Usr, "usr")] {
            let of_kind: Vec<usize> = (0..self.partitions.len())
                .filter(|&i| self.partitions[i].kind == kind)
                .collect();
            match of_kind.as_slice() {
                [_] => {}
                [] => {
                    return Err(self.at_key(
                        partitions_key,
                        &format!("exactly one {name} partition is needed, there is none"),
                    ));
                }
                [_, second, ..] => {
                    return Err(self.at_partition(
                        *second,
                        "Type",
                        &format!("exactly one {name} partition is needed, this is another"),
                    ));
                }
            }
        }
        for (i, p) in self.partitions.iter().enumerate() {
            self.validate_partition(i, p)?;
        }
        if let Some(i) = self
            .partitions
            .iter()
            .position(|p| p.kind == PartitionType::UsrVeritySig)
            && self.signing.is_none()
        {
            return Err(self.at_partition(
                i,
                "Type",
                "a usr-verity-sig partition needs a [signing] section",
            ));
        }
        Ok(())
    }

    fn validate_partition(&self, i: usize, p: &PartitionDefinition) -> Result<(), DefinitionError> {
        let kind = p.kind;
        if let (Some(min), Some(max)) = (p.size_min_bytes, p.size_max_bytes)
            && min > max
        {
            return Err(self.at_partition(
                i,
                "SizeMaxBytes",
                &format!(
                    "{kind} partition: SizeMaxBytes is less than SizeMinBytes ({})",
                    min.0
                ),
            ));
        }
        let role_ok = match p.verity {
            VerityRole::Off => true,
            VerityRole::Data => kind == PartitionType::Usr,
            VerityRole::Hash => kind == PartitionType::UsrVerity,
            VerityRole::Signature => kind == PartitionType::UsrVeritySig,
        };
        if !role_ok {
            return Err(self.at_partition(
                i,
                "Verity",
                &format!(
                    "{kind} partition cannot have Verity={}",
                    format!("{:?}", p.verity).to_lowercase()
                ),
            ));
        }
        if p.integrity().is_some() && p.encrypt == partition::Encrypt::Off {
            return Err(self.at_partition(
                i,
                "Integrity",
                &format!("{kind} partition: {}", partition::INTEGRITY_NEEDS_ENCRYPT),
            ));
        }
        if p.verity != VerityRole::Off && p.verity_match_key.as_deref() != Some("usr") {
            return Err(self.at_partition(
                i,
                "VerityMatchKey",
                &format!("{kind} partition: VerityMatchKey must be `usr`"),
            ));
        }
        for (key, size) in [
            ("VerityDataBlockSizeBytes", p.verity_data_block_size_bytes),
            ("VerityHashBlockSizeBytes", p.verity_hash_block_size_bytes),
        ] {
            let Some(size) = size else { continue };
            if p.verity != VerityRole::Hash {
                return Err(self.at_partition(i, key, "only applies to the Verity=hash partition"));
            }
            // The kernel takes verity blocks from 512 bytes up to its page size.
            if !size.0.is_power_of_two() || !(512..=4096).contains(&size.0) {
                return Err(self.at_partition(
                    i,
                    key,
                    &format!("{} is not a power of two from 512 to 4096", size.0),
                ));
            }
        }
        if kind == PartitionType::Usr {
            for copy in &p.copy_files {
                usr_copy(copy).map_err(|m| self.at_partition(i, "CopyFiles", &m))?;
            }
        }
        Ok(())
    }
}

/// One `CopyFiles=SOURCE[:TARGET]` of the usr partition: SOURCE inside the image's
/// /usr (as a path inside `usr.tree`), TARGET inside the partition (relative).
fn usr_copy(entry: &str) -> Result<(PathBuf, PathBuf), String> {
    let (source, target) = entry.split_once(':').unwrap_or((entry, entry));
    let inside_usr = Path::new(source)
        .strip_prefix("/usr")
        .ok()
        .filter(|rest| partition::is_plain_relative(rest));
    let Some(inside_usr) = inside_usr else {
        return Err(format!(
            "`{source}`: the usr partition is made from the image's /usr (usr.tree), \
             so a source must be /usr or a path under it, without `..`"
        ));
    };
    let target = Path::new(target)
        .strip_prefix("/")
        .ok()
        .filter(|t| partition::is_plain_relative(t))
        .ok_or_else(|| format!("`{target}`: a target must be an absolute path without `..`"))?;
    Ok((inside_usr.to_owned(), target.to_owned()))
}

#[cfg(test)]
mod tests;
