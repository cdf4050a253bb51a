//! The update source's `SHA256SUMS` (sha256sum format) and its detached PKCS#7
//! signature `SHA256SUMS.p7s`, made with the vendor key.
//!
//! PKCS#7 rather than ed25519: the vendor key is the same kind of X.509 identity as
//! the verity signing key, openssl can check it by hand
//! (`openssl cms -verify -binary -inform DER -in SHA256SUMS.p7s -content SHA256SUMS
//! -CAfile vendor.crt`), and nothing is trusted before it verifies.

use std::collections::BTreeMap;

use serde::Serialize;

pub const MANIFEST: &str = "SHA256SUMS";
pub const SIGNATURE: &str = "SHA256SUMS.p7s";

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Manifest {
    /// File name → lowercase hex sha256.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("SHA256SUMS line {line}: {why}")]
pub struct ManifestError {
    pub line: usize,
    pub why: String,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let mut files = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let err = |why: &str| ManifestError {
                line: i + 1,
                why: why.to_owned(),
            };
            let (hash, rest) = line
                .split_once(' ')
                .ok_or_else(|| err("expected `<sha256>  <file>`"))?;
            // sha256sum writes "  name" (text) or " *name" (binary).
            let name = rest
                .strip_prefix(' ')
                .or_else(|| rest.strip_prefix('*'))
                .ok_or_else(|| err("expected two spaces or ` *` after the hash"))?;
            if hash.len() != 64 || !hash.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(err("not a sha256 hex digest"));
            }
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(err("file names must be plain names in the same directory"));
            }
            if files
                .insert(name.to_owned(), hash.to_ascii_lowercase())
                .is_some()
            {
                return Err(err(&format!("{name} listed twice")));
            }
        }
        Ok(Manifest { files })
    }

    pub fn format(&self) -> String {
        self.files
            .iter()
            .map(|(n, h)| format!("{h}  {n}\n"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sha256sum_output_and_rejects_junk() {
        let h = "a".repeat(64);
        let m =
            Manifest::parse(&format!("{h}  tessera_2.efi\n{h} *tessera_2.usr-verity\n")).unwrap();
        assert_eq!(m.files.len(), 2);
        assert_eq!(Manifest::parse(&m.format()).unwrap(), m);
        assert_eq!(Manifest::parse("xyz  a\n").unwrap_err().line, 1);
        assert!(Manifest::parse(&format!("{h}  ../etc/passwd\n")).is_err());
        assert!(Manifest::parse(&format!("{h}  a\n{h}  a\n")).is_err());
    }
}
