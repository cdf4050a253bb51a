//! SLSA v1 provenance for built images: an in-toto Statement in a DSSE envelope,
//! written as `<image>.intoto.jsonl` (one envelope per line).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::gpt::Gpt;
use crate::sign::{SignError, SigningIdentity};

pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
pub const BUILD_TYPE: &str = "urn:tessera:osimage:build:v1";

#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("provenance is malformed: {0}")]
    Malformed(String),
    #[error("the DSSE signature does not verify with the given certificate")]
    BadSignature,
    #[error("{subject}: digest is {actual}, provenance says {expected}")]
    DigestMismatch {
        subject: String,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Sign(#[from] SignError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProvenanceError + '_ {
    move |source| ProvenanceError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A subject or material: a name and its sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub name: String,
    pub sha256: String,
}

impl Artifact {
    fn to_json(&self) -> Value {
        json!({ "name": self.name, "digest": { "sha256": self.sha256 } })
    }
}

/// DSSE's pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// sha256 of a file, streamed.
pub fn file_sha256(path: &Path) -> Result<String, ProvenanceError> {
    let mut f = File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// sha256 of `len` bytes of a file from `offset`.
pub fn range_sha256(path: &Path, offset: u64, len: u64) -> Result<String, ProvenanceError> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path).map_err(io(path))?;
    f.seek(SeekFrom::Start(offset)).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut left = len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = (left as usize).min(buf.len());
        f.read_exact(&mut buf[..n]).map_err(io(path))?;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hex::encode(h.finalize()))
}

/// A digest of a directory tree: every entry, sorted by path, with its kind,
/// permission bits and contents (or link target). Ownership and timestamps are left
/// out because the image does not keep them either.
pub fn tree_sha256(root: &Path) -> Result<String, ProvenanceError> {
    fn walk(root: &Path, rel: &Path, h: &mut Sha256) -> Result<(), ProvenanceError> {
        let dir = root.join(rel);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        entries.sort();
        for name in entries {
            let rel_path = rel.join(&name);
            let path = root.join(&rel_path);
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            let ft = meta.file_type();
            h.update(rel_path.as_os_str().as_encoded_bytes());
            h.update([0]);
            h.update((meta.mode() & 0o7777).to_le_bytes());
            if ft.is_dir() {
                h.update(b"d");
                walk(root, &rel_path, h)?;
            } else if ft.is_symlink() {
                h.update(b"l");
                let target = std::fs::read_link(&path).map_err(io(&path))?;
                h.update(target.as_os_str().as_encoded_bytes());
            } else if ft.is_file() {
                h.update(b"f");
                h.update(file_sha256(&path)?.as_bytes());
            } else {
                h.update(if ft.is_char_device() { b"c" } else { b"o" });
                h.update(meta.rdev().to_le_bytes());
            }
            h.update([0]);
        }
        Ok(())
    }
    let mut h = Sha256::new();
    walk(root, Path::new(""), &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// The in-toto statement for one build.
pub fn statement(subjects: &[Artifact], materials: &[Artifact], parameters: Value) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects.iter().map(Artifact::to_json).collect::<Vec<_>>(),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": parameters,
                "internalParameters": { "osimage": env!("CARGO_PKG_VERSION") },
                "resolvedDependencies": materials.iter().map(Artifact::to_json).collect::<Vec<_>>(),
            },
            "runDetails": {
                "builder": { "id": concat!("urn:tessera:osimage@", env!("CARGO_PKG_VERSION")) },
            },
        },
    })
}

/// Wraps a statement in a DSSE envelope signed with `id`.
pub fn envelope(statement: &Value, id: &SigningIdentity) -> Result<Value, ProvenanceError> {
    let payload =
        serde_json::to_vec(statement).map_err(|e| ProvenanceError::Malformed(e.to_string()))?;
    let sig = id.private_key().sign_sha256(&pae(PAYLOAD_TYPE, &payload));
    Ok(json!({
        "payloadType": PAYLOAD_TYPE,
        "payload": STANDARD.encode(&payload),
        "signatures": [{ "keyid": hex::encode(id.cert_fingerprint()), "sig": STANDARD.encode(&sig) }],
    }))
}

/// The provenance file for an image.
pub fn path_for(image: &Path) -> PathBuf {
    let mut name = image.file_name().unwrap_or_default().to_os_string();
    name.push(".intoto.jsonl");
    image.with_file_name(name)
}

/// What verification found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    pub keyid: String,
    pub subjects: Vec<Artifact>,
    pub materials: usize,
}

/// Checks `<image>.intoto.jsonl`: the DSSE signature with the certificate's key, the
/// image's own digest, and the digest of every partition the image's GPT lists.
pub fn verify(image: &Path, cert_pem: &Path) -> Result<Verified, ProvenanceError> {
    let prov_path = path_for(image);
    let text = std::fs::read_to_string(&prov_path).map_err(io(&prov_path))?;
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| ProvenanceError::Malformed("empty file".into()))?;
    let env: Value =
        serde_json::from_str(line).map_err(|e| ProvenanceError::Malformed(e.to_string()))?;
    let bad = |what: &str| ProvenanceError::Malformed(what.to_owned());
    if env["payloadType"] != PAYLOAD_TYPE {
        return Err(bad("payloadType is not in-toto"));
    }
    let payload = STANDARD
        .decode(env["payload"].as_str().ok_or_else(|| bad("no payload"))?)
        .map_err(|_| bad("payload is not base64"))?;
    let sig_entry = &env["signatures"][0];
    let sig = STANDARD
        .decode(
            sig_entry["sig"]
                .as_str()
                .ok_or_else(|| bad("no signature"))?,
        )
        .map_err(|_| bad("signature is not base64"))?;
    let cert = crate::sign::load_cert(cert_pem)?;
    let key = crate::sign::cert_public_key(&cert)?;
    if !key.verify_sha256(&pae(PAYLOAD_TYPE, &payload), &sig) {
        return Err(ProvenanceError::BadSignature);
    }

    let st: Value =
        serde_json::from_slice(&payload).map_err(|e| ProvenanceError::Malformed(e.to_string()))?;
    if st["_type"] != STATEMENT_TYPE || st["predicateType"] != PREDICATE_TYPE {
        return Err(bad("not an in-toto SLSA v1 statement"));
    }
    let subjects: Vec<Artifact> = st["subject"]
        .as_array()
        .ok_or_else(|| bad("no subjects"))?
        .iter()
        .map(|s| Artifact {
            name: s["name"].as_str().unwrap_or_default().to_owned(),
            sha256: s["digest"]["sha256"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        })
        .collect();
    let check = |name: &str, actual: String| -> Result<(), ProvenanceError> {
        let expected = subjects
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| bad(&format!("no subject {name}")))?;
        if expected.sha256 != actual {
            return Err(ProvenanceError::DigestMismatch {
                subject: name.to_owned(),
                expected: expected.sha256.clone(),
                actual,
            });
        }
        Ok(())
    };
    let image_name = image
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    check(&image_name, file_sha256(image)?)?;
    let f = File::open(image).map_err(io(image))?;
    let gpt = Gpt::decode(|off, buf| std::os::unix::fs::FileExt::read_exact_at(&f, buf, off))
        .map_err(|e| bad(&e.to_string()))?;
    let ss = gpt.sector_size as u64;
    for (i, p) in gpt.partitions.iter().enumerate() {
        let digest = range_sha256(image, p.first_lba * ss, p.sectors() * ss)?;
        check(&partition_subject(i, &p.kind.to_string()), digest)?;
    }
    let materials = st["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .map_or(0, Vec::len);
    Ok(Verified {
        keyid: sig_entry["keyid"].as_str().unwrap_or_default().to_owned(),
        subjects,
        materials,
    })
}

/// The subject name of partition `index` (0-based) of type `kind`.
pub fn partition_subject(index: usize, kind: &str) -> String {
    format!("partition/{}/{kind}", index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn tree_digest_sees_content_names_and_modes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("bin")).unwrap();
        std::fs::write(d.path().join("bin/a"), "x").unwrap();
        let one = tree_sha256(d.path()).unwrap();
        assert_eq!(one, tree_sha256(d.path()).unwrap());
        std::fs::write(d.path().join("bin/a"), "y").unwrap();
        assert_ne!(one, tree_sha256(d.path()).unwrap());
    }
}
