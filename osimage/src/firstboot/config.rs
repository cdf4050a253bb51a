//! `firstboot.toml`: see `config/osimage/firstboot.toml` for the commented defaults.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::WithoutTpm;
use crate::definition::DefinitionError;

pub const DEFAULT_PATH: &str = "/etc/osimage/firstboot.toml";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct FirstbootConfig {
    pub definitions: PathBuf,
    pub tpm: String,
    pub pcrs: Vec<u32>,
    pub signed_pcrs: Vec<u32>,
    pub pcr_public_key: PathBuf,
    pub without_tpm: WithoutTpm,
    pub recovery_key_hook: String,
    pub staging: PathBuf,
}

impl Default for FirstbootConfig {
    fn default() -> Self {
        FirstbootConfig {
            definitions: "/usr/lib/osimage/repart.d".into(),
            tpm: "auto".into(),
            pcrs: vec![7],
            signed_pcrs: vec![11],
            pcr_public_key: "/.extra/tpm2-pcr-public-key.pem".into(),
            without_tpm: WithoutTpm::RecoveryKey,
            recovery_key_hook: String::new(),
            staging: "/run/osimage".into(),
        }
    }
}

impl FirstbootConfig {
    /// Reads `path`; a missing file means the defaults.
    pub fn load(path: &Path) -> Result<FirstbootConfig, DefinitionError> {
        if !path.exists() {
            return Ok(FirstbootConfig::default());
        }
        let c: FirstbootConfig = tessera_config::load(path)?;
        if let Some(pcr) = c.pcrs.iter().chain(&c.signed_pcrs).find(|&&p| p > 23) {
            return Err(DefinitionError::Invalid {
                file: path.to_owned(),
                message: format!("PCR {pcr} does not exist (0-23)"),
            });
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/osimage/firstboot.toml")
    }

    #[test]
    fn the_shipped_file_is_the_defaults() {
        assert_eq!(
            FirstbootConfig::load(&shipped()).unwrap(),
            FirstbootConfig::default()
        );
        assert_eq!(
            FirstbootConfig::load(Path::new("/nonexistent/firstboot.toml")).unwrap(),
            FirstbootConfig::default()
        );
    }

    #[test]
    fn bad_keys_name_the_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("firstboot.toml");
        std::fs::write(&path, "tpm = \"auto\"\nwithout-tpm = \"maybe\"\n").unwrap();
        let e = FirstbootConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("firstboot.toml") && e.contains(":2"), "{e}");
        assert!(e.contains("without-tpm"), "{e}");
        std::fs::write(&path, "pcrs = [7, 24]\n").unwrap();
        let e = FirstbootConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("PCR 24 does not exist"), "{e}");
    }
}
