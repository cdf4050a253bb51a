//! `osimage build`: definitions → plan → image.
//!
//! Everything derived (salts, file system and partition UUIDs, timestamps) comes from
//! the build seed, the root hash and `SOURCE_DATE_EPOCH`, so the same inputs give a
//! bit-identical disk. The image is assembled in a temporary file beside the output
//! and renamed over it only when complete: a failed build leaves nothing behind.

pub mod plan;
pub mod usr;

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::definition::{FsFormat, ImageDefinition, VerityRole};
use crate::gpt::PartitionType;
use crate::sign::{SignError, SigningIdentity};
use crate::uki::{self, UkiError, UkiSpec};
use crate::verity::sig::VeritySig;
use crate::verity::{self, VerityError, VerityParams};
use crate::{esp, gpt};

pub use plan::{DiskPlan, PlanError, PlannedPartition};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{what}: {why}")]
    Input { what: String, why: String },
    #[error("not hermetic: {0} (pass --allow-non-hermetic or set usr.allow-non-hermetic = true)")]
    NonHermetic(String),
    #[error("{tool} failed: {why}")]
    Tool { tool: String, why: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Uki(#[from] UkiError),
    #[error(transparent)]
    Esp(#[from] esp::EspError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Gpt(#[from] gpt::GptError),
    #[error(transparent)]
    Verity(#[from] VerityError),
}

impl BuildError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> BuildError {
        BuildError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub output: PathBuf,
    /// Build everything in a scratch directory and report the plan; write no output.
    pub dry_run: bool,
    /// Every timestamp in the image (SOURCE_DATE_EPOCH).
    pub source_date_epoch: u64,
    /// Turn hermetic-/usr violations into warnings, as `usr.allow-non-hermetic` in
    /// the definition does.
    pub allow_non_hermetic: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildReport {
    pub image: PathBuf,
    pub written: bool,
    pub name: String,
    pub version: String,
    pub root_hash: String,
    pub cmdline: String,
    /// `EFI/Linux/<name>_<version>.efi` on the ESP.
    pub uki: String,
    pub uki_sha256: String,
    /// PCR 11 as the stub leaves it (phase ""), then after each boot phase.
    pub pcr11: Vec<crate::pcr::Prediction>,
    /// `<image>.intoto.jsonl`, when the build is signed.
    pub provenance: Option<PathBuf>,
    pub plan: DiskPlan,
    pub warnings: Vec<String>,
}

/// A UUID derived from the seed for one purpose (RFC 4122 v4 bits set, as repart's
/// derived UUIDs are).
pub fn derived_uuid(seed: &str, purpose: &str) -> Uuid {
    let h = Sha256::new()
        .chain_update(b"tessera-osimage uuid v1\0")
        .chain_update(purpose.as_bytes())
        .chain_update([0])
        .chain_update(seed.as_bytes())
        .finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Uuid::from_bytes(b)
}

fn read(path: &Path) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path).map_err(|e| BuildError::io(path, e))
}

/// Whether `bytes` are all zero. A reduction with no early exit, which the compiler
/// vectorises: scanning a 64 MiB ESP byte by byte with an early exit took longer than
/// writing its content.
fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, &b| acc | b) == 0
}

/// Where each partition's bytes come from.
enum Content {
    Bytes(Vec<u8>),
    File(PathBuf, u64),
}

impl Content {
    fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::File(_, n) => *n,
        }
    }
}

/// Adds `.pcrpkey` (the public half of `key`) and `.pcrsig` (the PCR 11 policy of
/// every boot phase, signed with `key`) to a UKI. `.pcrsig` covers every other
/// section, so this comes after they are all set.
pub fn sign_pcr_policy(spec: &mut UkiSpec, key: &rsa::RsaPrivateKey) -> Result<(), BuildError> {
    spec.pcrpkey = Some(
        crate::sign::PublicKey::Rsa(key.to_public_key())
            .to_pem()?
            .into_bytes(),
    );
    spec.pcrsig = None;
    let sections = spec.sections();
    let refs: Vec<(&str, &[u8])> = sections.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    let sig = crate::pcr::sign::sign_phases(&refs, &crate::pcr::DEFAULT_PHASES, key)?;
    spec.pcrsig = Some(serde_json::to_vec(&sig).unwrap_or_default());
    Ok(())
}

pub fn build(def: &ImageDefinition, opts: &BuildOptions) -> Result<BuildReport, BuildError> {
    let name = &def.image.name;
    let version = &def.image.version;
    let seed = &def.image.seed;
    let versioned = format!("{name}_{version}");
    let allow_non_hermetic = def.usr.allow_non_hermetic || opts.allow_non_hermetic;
    let mut warnings = usr::check_tree(&def.usr.tree, allow_non_hermetic)?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    // Keys first: a bad key must fail before any expensive work.
    let identity = match &def.signing {
        Some(s) => Some(SigningIdentity::load(&s.verity_key, &s.verity_cert)?),
        None => None,
    };
    let pcr_key = match def.signing.as_ref().and_then(|s| s.pcr_key.as_ref()) {
        Some(path) => Some(crate::sign::load_key(path)?),
        None => None,
    };

    let out_dir = match opts.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let scratch = if opts.dry_run {
        tempfile::Builder::new().prefix("osimage-build-").tempdir()
    } else {
        tempfile::Builder::new()
            .prefix(".osimage-build-")
            .tempdir_in(&out_dir)
    }
    .map_err(|e| BuildError::io(&out_dir, e))?;

    // /usr and its verity data.
    let usr_def = def
        .partitions
        .iter()
        .find(|p| p.kind == PartitionType::Usr)
        .ok_or_else(|| BuildError::Input {
            what: "definition".into(),
            why: "no usr partition".into(),
        })?;
    let format = usr_def.format.unwrap_or(FsFormat::Erofs);
    tracing::info!(
        "building the {format} /usr image from {}",
        def.usr.tree.display()
    );
    let usr_tree = usr::merge_trees(&def.usr_layers(), &scratch.path().join("usr-tree"))?;
    // What the extra trees add must be hermetic too (a TARGET of `etc` is /usr/etc).
    if usr_tree != def.usr.tree {
        for w in usr::check_tree(&usr_tree, allow_non_hermetic)? {
            tracing::warn!("{w}");
            warnings.push(w);
        }
    }
    let usr_img = usr::make_fs(
        format,
        &usr_tree,
        &scratch.path().join("usr.img"),
        derived_uuid(seed, "usr-fs"),
        opts.source_date_epoch,
    )?;
    let usr_file = File::open(&usr_img).map_err(|e| BuildError::io(&usr_img, e))?;
    let usr_len = usr_file
        .metadata()
        .map_err(|e| BuildError::io(&usr_img, e))?
        .len();
    tracing::info!("hashing {usr_len} bytes of /usr for dm-verity");
    let (data_block_size, hash_block_size) = def.verity_block_sizes();
    let vparams = VerityParams {
        data_block_size,
        hash_block_size,
        ..VerityParams::new(
            verity::derive_salt(seed.as_bytes(), "usr-verity"),
            *derived_uuid(seed, "usr-verity-superblock").as_bytes(),
        )
    };
    let tree = verity::build(&usr_file, 0, usr_len, &vparams, |_| {})?;
    let root_hex = hex::encode(tree.root_hash);
    let sig = match &identity {
        Some(id) => Some(VeritySig::sign(&tree.root_hash, id)?),
        None => None,
    };

    // The UKI, with usrhash= so the initrd finds and verifies /usr by itself.
    let linux = read(&def.uki.kernel)?;
    let mut initrd = Vec::new();
    for path in &def.uki.initrd {
        initrd.extend(read(path)?);
    }
    let cmdline = format!("{} usrhash={root_hex}", def.uki.cmdline.trim())
        .trim()
        .to_owned();
    let mut spec = UkiSpec {
        osrel: read(&def.uki.os_release)?,
        cmdline: cmdline.clone(),
        uname: uki::kernel_release(&linux),
        splash: match &def.uki.splash {
            Some(p) => Some(read(p)?),
            None => None,
        },
        pcrpkey: None,
        pcrsig: None,
        initrd,
        linux,
    };
    if let Some(key) = &pcr_key {
        sign_pcr_policy(&mut spec, key)?;
    }
    let pcr11 = {
        let sections = spec.sections();
        let refs: Vec<(&str, &[u8])> = sections.iter().map(|(n, d)| (*n, d.as_slice())).collect();
        let phases: Vec<&str> = std::iter::once("")
            .chain(crate::pcr::DEFAULT_PHASES)
            .collect();
        crate::pcr::predict(&refs, &phases)
    };
    let uki_bytes = spec.build_from_file(&def.uki.stub)?;
    let uki_sha256 = hex::encode(Sha256::digest(&uki_bytes));
    let uki_path = match def.boot.tries {
        Some(tries) => format!("EFI/Linux/{versioned}+{tries}.efi"),
        None => format!("EFI/Linux/{versioned}.efi"),
    };

    let sd_boot = read(&def.boot.systemd_boot)?;
    let mut esp_files = vec![
        ("EFI/BOOT/BOOTX64.EFI".to_owned(), sd_boot.clone()),
        ("EFI/systemd/systemd-bootx64.efi".to_owned(), sd_boot),
        (
            "loader/loader.conf".to_owned(),
            def.boot.loader_conf.clone().into_bytes(),
        ),
        ("loader/entries.srel".to_owned(), b"type1\n".to_vec()),
        (uki_path.clone(), uki_bytes),
    ];

    // With an XBOOTLDR partition the UKIs live there, and the ESP only holds the boot
    // loader (the Boot Loader Specification's split for small firmware-made ESPs).
    let has_xbootldr = def
        .partitions
        .iter()
        .any(|p| p.kind == PartitionType::Xbootldr);
    let mut xbootldr_files = Vec::new();
    if has_xbootldr && let Some(uki) = esp_files.pop() {
        xbootldr_files.push(uki);
    }
    let fat = |p: &crate::definition::PartitionDefinition,
               files: &[(String, Vec<u8>)],
               label: &str|
     -> Result<Content, BuildError> {
        let bytes: u64 = files.iter().map(|(_, d)| d.len() as u64 + 4096).sum();
        // Room for one more UKI (an update) plus FAT overhead.
        let auto = ((bytes * 2 + (8 << 20)).div_ceil(1 << 20) << 20)
            .max(esp::fat32_min_size(def.image.sector_size as u16));
        let size = p.size_min_bytes.map_or(auto, |s| s.0);
        let volume_id = u32::from_le_bytes(
            derived_uuid(seed, &format!("{label}-volume")).as_bytes()[..4]
                .try_into()
                .unwrap_or_default(),
        );
        Ok(Content::Bytes(esp::build(
            size,
            def.image.sector_size as u16,
            volume_id,
            label,
            files,
        )?))
    };

    // Each partition's content and identity, in definition order.
    let mut needs = Vec::new();
    let mut contents = Vec::new();
    for p in &def.partitions {
        let (content, uuid, label) = match (p.kind, p.verity) {
            (PartitionType::Esp, _) => (
                fat(p, &esp_files, "ESP")?,
                derived_uuid(seed, "esp"),
                "ESP".to_owned(),
            ),
            (PartitionType::Xbootldr, _) => (
                fat(p, &xbootldr_files, "XBOOTLDR")?,
                derived_uuid(seed, "xbootldr"),
                "XBOOTLDR".to_owned(),
            ),
            (PartitionType::Usr, VerityRole::Data | VerityRole::Off) => {
                let mut id = [0u8; 16];
                id.copy_from_slice(&tree.root_hash[..16]);
                (
                    Content::File(usr_img.clone(), usr_len),
                    Uuid::from_bytes(id),
                    versioned.clone(),
                )
            }
            (PartitionType::UsrVerity, VerityRole::Hash) => {
                let mut id = [0u8; 16];
                id.copy_from_slice(&tree.root_hash[16..]);
                (
                    Content::Bytes(tree.hash_device.clone()),
                    Uuid::from_bytes(id),
                    versioned.clone(),
                )
            }
            (PartitionType::UsrVeritySig, VerityRole::Signature) => {
                let bytes = sig
                    .as_ref()
                    .map(VeritySig::to_partition)
                    .unwrap_or_default();
                (
                    Content::Bytes(bytes),
                    derived_uuid(&root_hex, "usr-verity-sig"),
                    versioned.clone(),
                )
            }
            // Any other type without content: an empty (zeroed) partition of its
            // minimum size, as repart makes one without Format= or CopyFiles=.
            (PartitionType::Other(_), VerityRole::Off)
                if p.format.is_none() && p.copy_files.is_empty() =>
            {
                if p.size_min_bytes.is_none() {
                    return Err(BuildError::Input {
                        what: format!("{} partition", p.kind),
                        why: "an empty partition needs SizeMinBytes".into(),
                    });
                }
                let label = p.label.clone().unwrap_or_default();
                (
                    Content::Bytes(Vec::new()),
                    derived_uuid(seed, &format!("{}-{label}", p.kind)),
                    label,
                )
            }
            (kind, _) => {
                return Err(BuildError::Input {
                    what: format!("{kind} partition"),
                    why: match kind {
                        PartitionType::Root | PartitionType::Home | PartitionType::Swap | PartitionType::Var => {
                            "is created on the device at first boot (osimage firstboot), not shipped in the image".into()
                        }
                        _ => "osimage build does not make this partition type yet".into(),
                    },
                });
            }
        };
        needs.push(plan::PartitionNeeds {
            kind: p.kind,
            label: p.label.clone().unwrap_or(label),
            uuid,
            attributes: p.attributes(),
            content: content.len(),
            min: p.size_min_bytes.map(|s| s.0),
            max: p.size_max_bytes.map(|s| s.0),
        });
        contents.push(content);
    }
    let disk_plan = plan::plan(def.image.sector_size, derived_uuid(seed, "disk"), &needs)?;
    let gpt = disk_plan.gpt();
    let gpt_writes = gpt.encode()?;

    let mut report = BuildReport {
        image: opts.output.clone(),
        written: !opts.dry_run,
        name: name.clone(),
        version: version.clone(),
        root_hash: root_hex,
        cmdline,
        uki: uki_path,
        uki_sha256,
        pcr11,
        provenance: None,
        plan: disk_plan.clone(),
        warnings,
    };
    if opts.dry_run {
        return Ok(report);
    }

    let mut tmp = tempfile::Builder::new()
        .prefix(".osimage-")
        .suffix(".img.tmp")
        .tempfile_in(&out_dir)
        .map_err(|e| BuildError::io(&out_dir, e))?;
    let tmp_path = tmp.path().to_owned();
    let io = |e| BuildError::io(&tmp_path, e);
    tmp.as_file().set_len(disk_plan.disk_size).map_err(io)?;
    // The copied file systems go first, and the device starts on them while the
    // rest is written, so the final fsync has less to wait for. Queueing the
    // writeback blocks for as long as the device queue is full, so another thread
    // does it.
    let parts = || disk_plan.partitions.iter().zip(&contents);
    let mut writeback = Vec::new();
    for (part, content) in parts() {
        if let Content::File(path, len) = content {
            let mut src = File::open(path).map_err(|e| BuildError::io(path, e))?;
            tmp.as_file_mut()
                .seek(SeekFrom::Start(part.offset))
                .map_err(io)?;
            std::io::copy(&mut src, tmp.as_file_mut()).map_err(io)?;
            writeback.push((part.offset, *len));
        }
    }
    let queue_writeback = tmp.as_file().try_clone().ok().map(|f| {
        std::thread::spawn(move || {
            for (offset, len) in writeback {
                crate::disk::start_writeback(&f, offset, len);
            }
        })
    });
    for (part, content) in parts() {
        // The file starts as a hole; skipping zero chunks keeps the image sparse
        // and saves writing most of a mostly empty ESP.
        if let Content::Bytes(b) = content {
            const CHUNK: usize = 64 << 10;
            for (i, chunk) in b.chunks(CHUNK).enumerate() {
                if !is_zero(chunk) {
                    tmp.as_file()
                        .write_all_at(chunk, part.offset + (i * CHUNK) as u64)
                        .map_err(io)?;
                }
            }
        }
    }
    for (offset, bytes) in &gpt_writes {
        tmp.as_file().write_all_at(bytes, *offset).map_err(io)?;
    }
    if let Some(t) = queue_writeback {
        let _ = t.join();
    }
    tmp.as_file().sync_all().map_err(io)?;

    let provenance = match &identity {
        Some(id) => {
            let envelope = provenance_envelope(def, opts, &tmp_path, &report, id)?;
            let path = crate::provenance::path_for(&opts.output);
            let mut line = serde_json::to_vec(&envelope).unwrap_or_default();
            line.push(b'\n');
            let ptmp = tempfile::Builder::new()
                .prefix(".osimage-")
                .suffix(".intoto.tmp")
                .tempfile_in(&out_dir)
                .map_err(|e| BuildError::io(&out_dir, e))?;
            ptmp.as_file()
                .write_all_at(&line, 0)
                .map_err(|e| BuildError::io(ptmp.path(), e))?;
            Some((ptmp, path))
        }
        None => None,
    };
    tmp.persist(&opts.output)
        .map_err(|e| BuildError::io(&opts.output, e.error))?;
    if let Some((ptmp, path)) = provenance {
        ptmp.persist(&path)
            .map_err(|e| BuildError::io(&path, e.error))?;
        report.provenance = Some(path);
    }
    Ok(report)
}

/// The signed SLSA provenance of the image assembled at `image`.
fn provenance_envelope(
    def: &ImageDefinition,
    opts: &BuildOptions,
    image: &Path,
    report: &BuildReport,
    id: &SigningIdentity,
) -> Result<serde_json::Value, BuildError> {
    use crate::provenance::{self as prov, Artifact};
    let perr = |e: prov::ProvenanceError| BuildError::Input {
        what: "provenance".into(),
        why: e.to_string(),
    };
    let name = |p: &Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    let mut subjects = vec![
        Artifact {
            name: name(&opts.output),
            sha256: prov::file_sha256(image).map_err(perr)?,
        },
        Artifact {
            name: report.uki.clone(),
            sha256: report.uki_sha256.clone(),
        },
    ];
    for (i, p) in report.plan.partitions.iter().enumerate() {
        subjects.push(Artifact {
            name: prov::partition_subject(i, &p.kind.to_string()),
            sha256: prov::range_sha256(image, p.offset, p.size).map_err(perr)?,
        });
    }
    let mut materials = vec![Artifact {
        name: "usr-tree".into(),
        sha256: prov::tree_sha256(&def.usr.tree).map_err(perr)?,
    }];
    for t in &def.usr.extra_trees {
        let sha256 = if t.source.is_dir() {
            prov::tree_sha256(&t.source)
        } else {
            prov::file_sha256(&t.source)
        }
        .map_err(perr)?;
        materials.push(Artifact {
            name: format!("usr-extra-tree:/usr/{}", t.target.display()),
            sha256,
        });
    }
    let mut files: Vec<(&str, &Path)> = vec![
        ("definition", def.source.as_path()),
        ("kernel", def.uki.kernel.as_path()),
        ("os-release", def.uki.os_release.as_path()),
        ("stub", def.uki.stub.as_path()),
        ("systemd-boot", def.boot.systemd_boot.as_path()),
    ];
    files.extend(def.uki.initrd.iter().map(|p| ("initrd", p.as_path())));
    if let Some(s) = &def.uki.splash {
        files.push(("splash", s.as_path()));
    }
    for (role, path) in files {
        materials.push(Artifact {
            name: format!("{role}:{}", name(path)),
            sha256: prov::file_sha256(path).map_err(perr)?,
        });
    }
    let parameters = serde_json::json!({
        "definition": name(&def.source),
        "name": def.image.name,
        "version": def.image.version,
        "seed": def.image.seed,
        "sectorSize": def.image.sector_size,
        "sourceDateEpoch": opts.source_date_epoch,
        "rootHash": report.root_hash,
    });
    prov::envelope(&prov::statement(&subjects, &materials, parameters), id).map_err(perr)
}
