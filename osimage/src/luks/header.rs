//! The LUKS2 on-disk header, read without libcryptsetup: firstboot and `osimage
//! status` look at partitions inside a disk (not block devices of their own), and
//! shredding needs to know where the key material ends even when the header is
//! damaged. Layout per the LUKS2 on-disk format specification (version 1.1.x):
//! a 4096-byte binary header, then the JSON area, the same again as the secondary
//! copy, then the keyslots area; the data segment starts after all of it.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// "LUKS\xba\xbe" and, for the secondary header, "SKUL\xba\xbe".
const MAGIC_PRIMARY: &[u8; 6] = b"LUKS\xba\xbe";
const MAGIC_SECONDARY: &[u8; 6] = b"SKUL\xba\xbe";
const BINARY_SIZE: usize = 4096;
/// Where libcryptsetup looks for a secondary header when the primary is damaged:
/// one for each allowed metadata size.
pub const SECONDARY_OFFSETS: [u64; 9] = [
    0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000,
];
/// The most metadata plus keyslots a LUKS2 header made by cryptsetup's defaults takes
/// (its default data offset); what is shredded when a header is unreadable.
pub const DEFAULT_METADATA_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("no LUKS2 header (no LUKS magic at the start)")]
    NotLuks,
    #[error("LUKS version {0}, not 2")]
    Version(u16),
    #[error("LUKS2 header is corrupt: {0}")]
    Corrupt(String),
}

/// What firstboot and status need from a header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Luks2Header {
    pub uuid: String,
    pub label: String,
    /// Bytes of one header copy (binary header plus JSON area).
    pub header_size: u64,
    /// Where the encrypted data starts: everything before it is key material.
    pub data_offset: u64,
    /// Keyslot ids in use.
    pub keyslots: Vec<u32>,
    /// Token types by id.
    pub tokens: Vec<(u32, String)>,
    /// Which copy was read: the primary, or the secondary after a damaged primary.
    pub from_secondary: bool,
    /// The data segment's integrity algorithm (`hmac(sha256)`) of an authenticated
    /// volume.
    pub integrity: Option<String>,
}

/// True when the bytes start with either header magic: a partition that once held
/// LUKS2, readable or not.
pub fn has_magic(start: &[u8]) -> bool {
    start.starts_with(MAGIC_PRIMARY) || start.starts_with(MAGIC_SECONDARY)
}

impl Luks2Header {
    /// Parses the header at the start of `area` (which should hold at least the
    /// metadata: 4 MiB covers every allowed header size), falling back to the
    /// secondary copy as libcryptsetup does.
    pub fn parse(area: &[u8]) -> Result<Luks2Header, HeaderError> {
        if !area.starts_with(MAGIC_PRIMARY) {
            return Err(HeaderError::NotLuks);
        }
        match parse_copy(area, 0, MAGIC_PRIMARY) {
            Ok(h) => Ok(h),
            Err(primary) => {
                for off in SECONDARY_OFFSETS {
                    if let Ok(mut h) = parse_copy(area, off as usize, MAGIC_SECONDARY) {
                        h.from_secondary = true;
                        return Ok(h);
                    }
                }
                Err(primary)
            }
        }
    }

    /// The protection a volume has, by its tokens: what `osimage status` reports.
    pub fn protection(&self) -> Protection {
        let has = |t: &str| self.tokens.iter().any(|(_, k)| k == t);
        match (has("systemd-tpm2"), has("systemd-recovery")) {
            (true, true) => Protection::Tpm2AndRecoveryKey,
            (true, false) => Protection::Tpm2,
            (false, true) => Protection::RecoveryKeyOnly,
            (false, false) => Protection::Passphrase,
        }
    }
}

/// How a LUKS2 volume can be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protection {
    Tpm2AndRecoveryKey,
    Tpm2,
    /// The weaker mode without a TPM: only the recovery key opens it.
    RecoveryKeyOnly,
    /// No token that says how; a passphrase typed by someone.
    Passphrase,
}

impl std::fmt::Display for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protection::Tpm2AndRecoveryKey => "TPM2 (signed PCR policy) + recovery key",
            Protection::Tpm2 => "TPM2 only",
            Protection::RecoveryKeyOnly => "recovery key only (no TPM: weaker mode)",
            Protection::Passphrase => "passphrase",
        })
    }
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn parse_copy(area: &[u8], at: usize, magic: &[u8; 6]) -> Result<Luks2Header, HeaderError> {
    let corrupt = |m: String| HeaderError::Corrupt(m);
    let bin = area
        .get(at..at + BINARY_SIZE)
        .ok_or_else(|| corrupt("truncated binary header".into()))?;
    if &bin[..6] != magic {
        return Err(HeaderError::NotLuks);
    }
    let version = u16::from_be_bytes([bin[6], bin[7]]);
    if version != 2 {
        return Err(HeaderError::Version(version));
    }
    let header_size = be64(bin, 8);
    if !SECONDARY_OFFSETS.contains(&header_size) {
        return Err(corrupt(format!("header size {header_size}")));
    }
    if be64(bin, 256) != at as u64 {
        return Err(corrupt(
            "header offset field does not match its place".into(),
        ));
    }
    let whole = area
        .get(at..at + header_size as usize)
        .ok_or_else(|| corrupt("truncated JSON area".into()))?;
    let alg = c_string(&bin[72..104]);
    if alg != "sha256" {
        return Err(corrupt(format!("checksum algorithm `{alg}` is not sha256")));
    }
    // The checksum covers the whole copy with the checksum field itself zeroed.
    let mut h = Sha256::new();
    h.update(&whole[..448]);
    h.update([0u8; 64]);
    h.update(&whole[512..]);
    if h.finalize()[..] != bin[448..480] {
        return Err(corrupt("header checksum mismatch".into()));
    }
    let json_bytes = &whole[BINARY_SIZE..];
    let end = json_bytes
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(json_bytes.len());
    let json: serde_json::Value = serde_json::from_slice(&json_bytes[..end])
        .map_err(|e| corrupt(format!("JSON metadata: {e}")))?;
    let ids = |key: &str| -> Vec<(u32, serde_json::Value)> {
        let mut v: Vec<(u32, serde_json::Value)> = json
            .get(key)
            .and_then(|o| o.as_object())
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|(k, _)| *k);
        v
    };
    // JSON numbers above 2^53 are strings in LUKS2; offsets are always strings.
    let number = |v: &serde_json::Value| -> Option<u64> {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| v.as_u64())
    };
    let data_offset = ids("segments")
        .iter()
        .filter_map(|(_, s)| s.get("offset").and_then(number))
        .min()
        .ok_or_else(|| corrupt("no data segment".into()))?;
    let keyslots_size = json
        .get("config")
        .and_then(|c| c.get("keyslots_size"))
        .and_then(number)
        .ok_or_else(|| corrupt("no config.keyslots_size".into()))?;
    if data_offset != 0 && data_offset < (2 * header_size).saturating_add(keyslots_size) {
        return Err(corrupt(format!(
            "data segment at {data_offset} overlaps the metadata"
        )));
    }
    let integrity = ids("segments")
        .iter()
        .find_map(|(_, s)| Some(s.get("integrity")?.get("type")?.as_str()?.to_owned()));
    Ok(Luks2Header {
        integrity,
        uuid: c_string(&bin[168..208]),
        label: c_string(&bin[24..72]),
        header_size,
        data_offset,
        keyslots: ids("keyslots").into_iter().map(|(k, _)| k).collect(),
        tokens: ids("tokens")
            .into_iter()
            .map(|(k, t)| {
                let kind = t.get("type").and_then(|t| t.as_str()).unwrap_or("");
                (k, kind.to_owned())
            })
            .collect(),
        from_secondary: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal, valid header copy built by hand (the real thing is checked against
    /// cryptsetup in tests/firstboot.rs).
    fn copy(at: u64, magic: &[u8; 6], json: &str) -> Vec<u8> {
        let size = 0x4000usize;
        let mut b = vec![0u8; size];
        b[..6].copy_from_slice(magic);
        b[6..8].copy_from_slice(&2u16.to_be_bytes());
        b[8..16].copy_from_slice(&(size as u64).to_be_bytes());
        b[72..78].copy_from_slice(b"sha256");
        b[168..172].copy_from_slice(b"abcd");
        b[256..264].copy_from_slice(&at.to_be_bytes());
        b[4096..4096 + json.len()].copy_from_slice(json.as_bytes());
        let sum = Sha256::digest(&b);
        b[448..480].copy_from_slice(&sum);
        b
    }

    const JSON: &str = r#"{"keyslots":{"0":{},"2":{}},"tokens":{"1":{"type":"systemd-recovery"}},
        "segments":{"0":{"offset":"16777216"}},"config":{"keyslots_size":"16744448"}}"#;

    fn both() -> Vec<u8> {
        let mut area = copy(0, MAGIC_PRIMARY, JSON);
        area.extend(copy(0x4000, MAGIC_SECONDARY, JSON));
        area
    }

    #[test]
    fn a_header_parses_with_its_slots_tokens_and_data_offset() {
        let h = Luks2Header::parse(&both()).unwrap();
        assert_eq!(h.integrity, None);
        let with = JSON.replace(
            r#"{"offset":"16777216"}"#,
            r#"{"offset":"16777216","integrity":{"type":"hmac(sha256)"}}"#,
        );
        let h2 = Luks2Header::parse(&copy(0, MAGIC_PRIMARY, &with)).unwrap();
        assert_eq!(h2.integrity.as_deref(), Some("hmac(sha256)"));
        assert_eq!(h.uuid, "abcd");
        assert_eq!(h.data_offset, 16 << 20);
        assert_eq!(h.keyslots, [0, 2]);
        assert_eq!(h.tokens, [(1, "systemd-recovery".to_string())]);
        assert_eq!(h.protection(), Protection::RecoveryKeyOnly);
        assert!(!h.from_secondary);
    }

    #[test]
    fn a_damaged_primary_falls_back_to_the_secondary_and_both_damaged_is_corrupt() {
        let mut area = both();
        area[5000] ^= 1;
        let h = Luks2Header::parse(&area).unwrap();
        assert!(h.from_secondary);
        area[0x4000 + 5000] ^= 1;
        assert!(matches!(
            Luks2Header::parse(&area),
            Err(HeaderError::Corrupt(m)) if m.contains("checksum")
        ));
        assert_eq!(Luks2Header::parse(&[0u8; 8192]), Err(HeaderError::NotLuks));
        assert!(has_magic(&area));
    }
}
