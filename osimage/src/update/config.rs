//! Update settings: `update.toml` (see `config/update.toml`), or systemd
//! `sysupdate.d/*.transfer` files for the same keys.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::definition::DefinitionError;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SourceSection {
    /// Base URL (http, https) or directory.
    pub url: Option<String>,
    /// Certificate trusted for SHA256SUMS.p7s.
    pub vendor_cert: Option<PathBuf>,
    /// Certificate trusted for verity root hash signatures (default: vendor's).
    pub verity_cert: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TransferSection {
    /// OS name: files and labels are `<name>_<version>`.
    pub name: Option<String>,
    /// Versions below this are never installed (sysupdate's MinVersion).
    pub min_version: Option<String>,
    /// How many versions' UKIs to keep (InstancesMax).
    pub instances_max: Option<usize>,
    /// Boot counting tries for a new version (TriesLeft).
    pub tries: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UpdateConfig {
    #[serde(default)]
    pub source: SourceSection,
    #[serde(default)]
    pub transfer: TransferSection,
}

impl UpdateConfig {
    pub fn load_toml(path: &Path) -> Result<UpdateConfig, DefinitionError> {
        let mut c: UpdateConfig = tessera_config::load(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [c.source.vendor_cert.as_mut(), c.source.verity_cert.as_mut()]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(c)
    }

    /// Reads every `*.transfer` in `dir`. The keys osimage uses are taken from them:
    /// `[Transfer] MinVersion=`, `[Source] Path=` (the URL), the `<name>_@v` prefix of
    /// `MatchPattern=`, and `[Target] InstancesMax=`, `TriesLeft=`. Type and Path of
    /// the targets are osimage's own (slots by label, UKIs on the ESP).
    pub fn load_sysupdate_dir(dir: &Path) -> Result<UpdateConfig, DefinitionError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| DefinitionError::Read {
                path: dir.to_owned(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "transfer"))
            .collect();
        files.sort();
        let mut c = UpdateConfig::default();
        for f in &files {
            let text = std::fs::read_to_string(f).map_err(|source| DefinitionError::Read {
                path: f.clone(),
                source,
            })?;
            parse_transfer(&text, f, &mut c)?;
        }
        Ok(c)
    }
}

/// Keys of sysupdate.d that do not change what osimage does, accepted silently.
const KNOWN: &[(&str, &str)] = &[
    ("Transfer", "ProtectVersion"),
    ("Transfer", "Verify"),
    ("Source", "Type"),
    ("Target", "Type"),
    ("Target", "Path"),
    ("Target", "MatchPartitionType"),
    ("Target", "PartitionFlags"),
    ("Target", "ReadOnly"),
    ("Target", "Mode"),
    ("Target", "MatchPattern"),
    ("Target", "PathRelativeTo"),
];

fn parse_transfer(text: &str, path: &Path, c: &mut UpdateConfig) -> Result<(), DefinitionError> {
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let at = |key: &str, message: String| DefinitionError::At {
            file: path.to_owned(),
            line: i + 1,
            key: key.to_owned(),
            message,
        };
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| at("", format!("expected Key=Value, got `{line}`")))?;
        match (section.as_str(), key) {
            ("Transfer", "MinVersion") => c.transfer.min_version = Some(value.to_owned()),
            ("Source", "Path") => c.source.url = Some(value.to_owned()),
            ("Source", "MatchPattern") => {
                let name = value
                    .split_once("_@v")
                    .map(|(n, _)| n)
                    .filter(|n| !n.is_empty() && !n.contains('@'))
                    .ok_or_else(|| at(key, format!("`{value}` does not start with <name>_@v")))?;
                if let Some(prev) = &c.transfer.name
                    && prev != name
                {
                    return Err(at(
                        key,
                        format!("name `{name}` differs from `{prev}` in another transfer"),
                    ));
                }
                c.transfer.name = Some(name.to_owned());
            }
            ("Target", "InstancesMax") => {
                c.transfer.instances_max = Some(
                    value
                        .parse()
                        .map_err(|_| at(key, format!("`{value}` is not a number")))?,
                )
            }
            ("Target", "TriesLeft") => {
                c.transfer.tries = Some(
                    value
                        .parse()
                        .map_err(|_| at(key, format!("`{value}` is not a number")))?,
                )
            }
            (s, k) if KNOWN.contains(&(s, k)) => {}
            (s, k) => return Err(at(k, format!("unknown or unsupported key in [{s}]"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysupdate_transfers_map_to_the_same_settings_as_the_toml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("50-uki.transfer"),
            "[Transfer]\nMinVersion=1.0\nProtectVersion=%A\n\n[Source]\nType=url-file\nPath=https://updates.example/tessera/\nMatchPattern=tessera_@v.efi\n\n[Target]\nType=regular-file\nPath=/EFI/Linux\nMatchPattern=tessera_@v+@l-@d.efi\nInstancesMax=2\nTriesLeft=3\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("10-usr.transfer"),
            "[Source]\nType=url-file\nPath=https://updates.example/tessera/\nMatchPattern=tessera_@v.usr.erofs\n[Target]\nType=partition\nPath=auto\nMatchPattern=tessera_@v\nMatchPartitionType=usr\n",
        )
        .unwrap();
        let c = UpdateConfig::load_sysupdate_dir(dir.path()).unwrap();
        assert_eq!(
            c.source.url.as_deref(),
            Some("https://updates.example/tessera/")
        );
        assert_eq!(c.transfer.name.as_deref(), Some("tessera"));
        assert_eq!(c.transfer.min_version.as_deref(), Some("1.0"));
        assert_eq!(
            (c.transfer.instances_max, c.transfer.tries),
            (Some(2), Some(3))
        );

        std::fs::write(
            dir.path().join("90-bad.transfer"),
            "[Target]\nInstancesMax=two\n",
        )
        .unwrap();
        let e = UpdateConfig::load_sysupdate_dir(dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("90-bad.transfer:2: key `InstancesMax`"), "{e}");
    }

    #[test]
    fn the_shipped_update_toml_parses() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/update.toml");
        let c = UpdateConfig::load_toml(&p).unwrap();
        assert_eq!(c.transfer.name.as_deref(), Some("tessera"));
        assert_eq!(c.transfer.instances_max, Some(2));
    }
}
