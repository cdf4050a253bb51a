//! `osimage firstboot`: completes an installed disk in the initrd, before root is
//! mounted. It adds the B usr slot and the encrypted root, home and swap the
//! definitions ask for, in free space only, and honours a factory reset request.
//! Idempotent: on a complete disk with no request it reads and writes nothing more.
//!
//! Crash safety comes from ordering, never from luck:
//! - a new partition's LUKS2 header is written into free space, which nothing
//!   references, and the partition table points at it only in one final table write;
//! - the recovery key is shown before that write, so no volume exists whose key
//!   nobody saw;
//! - a reset first relabels its targets [`RESET_LABEL`] (one table write): from then
//!   on the disk itself says the reset must finish, whatever the request's source;
//! - on a block device, a partition to format enters the table as [`RESET_LABEL`] and
//!   takes its own label only once its file system is made (see [`format`]).

pub mod blockdev;
pub mod config;
pub mod format;
pub mod plan;
pub mod status;

use std::io;
use std::path::Path;

use serde::Serialize;
use uuid::Uuid;

use crate::definition::PartitionDefinition;
use crate::definition::partition::Encrypt;
use crate::disk::{Disk, read_gpt, write_gpt};
use crate::gpt::{Gpt, GptPartition};
use crate::luks::LuksError;
use crate::luks::enroll::{
    EnrollError, Existing, Tpm2Binding, enroll_recovery_key, enroll_tpm2, mixed_random,
};
use crate::luks::format::{FormatSpec, format_header, volume_key_bytes};
use crate::luks::header::{DEFAULT_METADATA_BYTES, Luks2Header, Protection, has_magic};
use crate::tpm2::{PcrSelection, Tpm, Tpm2Error, crypto};
pub use format::{BlockDevice, FormatError, FormatJob};
pub use plan::{PlanError, PlannedPartition, RESET_LABEL};

/// Headers and wipes go to the disk in pieces of this size: each is one write of the
/// crash sweep.
const CHUNK: usize = 1 << 20;
/// Enough of a partition to read any LUKS2 header copy.
const HEADER_AREA: u64 = 8 << 20;

/// Where a factory reset request comes from, and how it is withdrawn.
pub trait ResetRequest {
    fn requested(&self) -> io::Result<bool>;
    fn clear(&mut self) -> io::Result<()>;
}

/// What is shown once: the recovery key, and the volumes it opens.
pub struct RecoveryKey {
    pub key: String,
    pub partitions: Vec<String>,
    pub luks_uuids: Vec<Uuid>,
}

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryKey")
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

/// What to do without a TPM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WithoutTpm {
    /// Enroll only the recovery key (the documented weaker mode), with a warning.
    #[default]
    RecoveryKey,
    /// Refuse: encrypted partitions need a TPM.
    Fail,
}

pub struct Firstboot<'a> {
    pub definitions: &'a [PartitionDefinition],
    pub tpm: Option<&'a mut Tpm>,
    pub binding: &'a Tpm2Binding,
    pub without_tpm: WithoutTpm,
    pub reset: &'a mut dyn ResetRequest,
    /// A directory for building LUKS2 headers (a tmpfs in the initrd).
    pub staging: &'a Path,
    pub show_recovery_key: &'a mut dyn FnMut(&RecoveryKey) -> io::Result<()>,
    /// The disk as the kernel's block device, through which the new partitions get
    /// their file systems; `None` for an image file, whose partitions stay
    /// unformatted.
    pub block: Option<&'a mut dyn BlockDevice>,
    pub dry_run: bool,
}

impl std::fmt::Debug for Firstboot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Firstboot")
            .field("definitions", &self.definitions.len())
            .field("tpm", &self.tpm.is_some())
            .field("without_tpm", &self.without_tpm)
            .field("block", &self.block.is_some())
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FirstbootError {
    #[error("no usable partition table ({0}): firstboot completes an installed disk")]
    NoTable(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("partition {number} (`{label}`): {why}; nothing was written")]
    Partition {
        number: usize,
        label: String,
        why: String,
    },
    #[error(transparent)]
    Tpm(#[from] Tpm2Error),
    #[error(
        "there is no TPM and the configuration says without-tpm = \"fail\"; nothing was written"
    )]
    TpmRequired,
    #[error(transparent)]
    Enroll(#[from] EnrollError),
    #[error(transparent)]
    Luks(#[from] LuksError),
    #[error("showing the recovery key failed ({0}); the new partitions were not committed")]
    RecoveryKey(io::Error),
    #[error("the factory reset request: {0}")]
    Request(io::Error),
    #[error(
        "making the file system of partition {number} (`{label}`): {error}; it stays marked \
         for re-creation, which the next run does"
    )]
    Format {
        number: u32,
        label: String,
        error: FormatError,
    },
    #[error("telling the kernel about the new partition table: {0}")]
    Kernel(FormatError),
    #[error("`{label}` has Integrity=inline, which {why}; nothing was written")]
    IntegrityUnavailable { label: String, why: &'static str },
    #[error("writing the disk: {0}")]
    Io(#[from] io::Error),
}

impl FirstbootError {
    /// The TPM cannot be used as it is: a state for its owner to fix, not a bug.
    pub fn is_tpm_unusable(&self) -> bool {
        matches!(
            self,
            FirstbootError::TpmRequired
                | FirstbootError::Tpm(
                    Tpm2Error::Lockout | Tpm2Error::NoSha256Bank | Tpm2Error::NoTpm(_)
                )
                | FirstbootError::Enroll(EnrollError::Tpm(
                    Tpm2Error::Lockout | Tpm2Error::NoSha256Bank
                ))
        )
    }

    /// The disk and the definitions do not fit together.
    pub fn is_layout(&self) -> bool {
        matches!(
            self,
            FirstbootError::Plan(_)
                | FirstbootError::Partition { .. }
                | FirstbootError::IntegrityUnavailable { .. }
        )
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetReport {
    /// The partitions erased, as `<number>:<label>`.
    pub erased: Vec<String>,
    pub tpm_objects_flushed: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddedPartition {
    #[serde(flatten)]
    pub planned: PlannedPartition,
    pub uuid: Uuid,
    pub luks_uuid: Option<Uuid>,
    /// Whether its file system was made (only on a block device).
    pub formatted: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub dry_run: bool,
    pub reset: Option<ResetReport>,
    pub added: Vec<AddedPartition>,
    /// How the new encrypted partitions can be opened.
    pub protection: Option<Protection>,
    pub warnings: Vec<String>,
}

fn random_uuid() -> Result<Uuid, Tpm2Error> {
    let mut b = [0u8; 16];
    b.copy_from_slice(&crypto::random(16)?);
    Ok(uuid::Builder::from_random_bytes(b).into_uuid())
}

/// Key material: the OS RNG mixed with the TPM's when there is one.
fn random(n: usize, tpm: Option<&mut Tpm>) -> Result<Vec<u8>, Tpm2Error> {
    match tpm {
        Some(t) => mixed_random(t, n),
        None => crypto::random(n),
    }
}

fn uses_tpm(e: Encrypt) -> bool {
    matches!(e, Encrypt::Tpm2 | Encrypt::KeyFileTpm2)
}

/// Runs firstboot on `disk`.
pub fn run(disk: &mut dyn Disk, fb: Firstboot<'_>) -> Result<Report, FirstbootError> {
    let Firstboot {
        definitions: defs,
        mut tpm,
        binding,
        without_tpm,
        reset,
        staging,
        show_recovery_key,
        mut block,
        dry_run,
    } = fb;
    let mut gpt = read_gpt(disk).map_err(|e| FirstbootError::NoTable(e.to_string()))?;
    gpt.validate().map_err(PlanError::Table)?;
    plan::check_definitions(defs)?;
    let ss = gpt.sector_size as u64;
    let mut report = Report {
        dry_run,
        reset: None,
        added: Vec::new(),
        protection: None,
        warnings: Vec::new(),
    };

    // Everything is decided before the first write: the reset's targets, the checks
    // of what stays, the new layout, and whether the TPM can take part.
    let requested = reset.requested().map_err(FirstbootError::Request)?;
    let targets: Vec<usize> = if requested {
        plan::reset_targets(defs, &gpt)
    } else {
        (0..gpt.partitions.len())
            .filter(|&i| gpt.partitions[i].label == RESET_LABEL)
            .collect()
    };
    let mut after_reset = gpt.clone();
    for &i in targets.iter().rev() {
        after_reset.partitions.remove(i);
    }
    check_existing(disk, defs, &after_reset, &gpt)?;
    after_reset.total_sectors = disk.size() / ss;
    let planned = plan::plan(defs, &after_reset)?;
    let encrypted = planned.iter().any(|p| p.encrypted());
    let want_tpm = planned.iter().any(|p| uses_tpm(p.encrypt));
    if want_tpm {
        match tpm.as_deref_mut() {
            Some(t) => preflight(t, binding)?,
            None if without_tpm == WithoutTpm::Fail => return Err(FirstbootError::TpmRequired),
            None => report.warnings.push(
                "no TPM: the encrypted partitions get only a recovery key, which must be typed \
                 at every boot (the weaker mode; `osimage status` shows it)"
                    .into(),
            ),
        }
    }
    if encrypted {
        report.protection = Some(if want_tpm && tpm.is_some() {
            Protection::Tpm2AndRecoveryKey
        } else {
            Protection::RecoveryKeyOnly
        });
    }
    if requested || !targets.is_empty() {
        report.reset = Some(ResetReport {
            erased: targets
                .iter()
                .map(|&i| format!("{}:{}", gpt.number(i), gpt.partitions[i].label))
                .collect(),
            tpm_objects_flushed: 0,
        });
    }
    if block.is_none() {
        for p in planned.iter().filter(|p| format::needs_format(p)) {
            report.warnings.push(format!(
                "`{}`: the file system (Format={}) is left unformatted: the disk is an image \
                 file, and making a file system needs the partition as a block device (and \
                 device-mapper, for an encrypted one)",
                p.label,
                p.format.map_or_else(String::new, |f| f.to_string())
            ));
        }
    }
    if let Some(p) = planned.iter().find(|p| p.integrity.is_some()) {
        // Checked before anything is written: a volume whose tags were never
        // initialized reads as I/O errors.
        // A dry run never has the block device (the initrd's first, read-only look
        // is one): the check is for the run that writes.
        let why = if dry_run {
            None
        } else if block.is_none() {
            Some(
                "needs the disk as a block device: its integrity tags are initialized \
                 through device-mapper, and this disk is an image file",
            )
        } else if !device_mapper_available() {
            Some("needs device-mapper (dm_mod, dm_integrity and dm_crypt), and it is missing")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(FirstbootError::IntegrityUnavailable {
                label: p.label.clone(),
                why,
            });
        }
    }
    if dry_run {
        report.added = planned
            .into_iter()
            .map(|planned| AddedPartition {
                planned,
                uuid: Uuid::nil(),
                luks_uuid: None,
                formatted: false,
            })
            .collect();
        return Ok(report);
    }

    if !targets.is_empty() {
        erase(disk, &mut gpt, &targets)?;
    }
    if requested {
        reset.clear().map_err(FirstbootError::Request)?;
    }
    if let (Some(r), Some(t)) = (report.reset.as_mut(), tpm.as_deref_mut()) {
        // A TPM without a resource manager keeps what an interrupted run loaded.
        r.tpm_objects_flushed = t.flush_transient()?;
    }
    if planned.is_empty() {
        if let (Some(b), false) = (block.as_deref_mut(), targets.is_empty()) {
            b.sync_partitions(&after_reset)
                .map_err(FirstbootError::Kernel)?;
        }
        return Ok(report);
    }
    // The table on the disk is now `after_reset` (the erased partitions deleted);
    // the new one adds to it, with the backup table moved to the disk's real end.
    report.added = create(
        disk,
        &mut after_reset,
        planned,
        tpm,
        binding,
        staging,
        show_recovery_key,
        block,
    )?;
    Ok(report)
}

/// Whether the kernel's device-mapper answers: its control node opens.
fn device_mapper_available() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/mapper/control")
        .is_ok()
}

/// The TPM must be able to seal now and unseal later: not locked out, with the
/// sha256 bank that every PCR of the binding is read from.
fn preflight(tpm: &mut Tpm, binding: &Tpm2Binding) -> Result<(), Tpm2Error> {
    if tpm.in_lockout()? {
        return Err(Tpm2Error::Lockout);
    }
    let mut pcrs = binding.pcrs.clone();
    if let Some((_, signed)) = &binding.signed {
        pcrs.extend(signed);
    }
    if !pcrs.is_empty() {
        tpm.pcr_read(&PcrSelection::sha256(&pcrs))?;
    }
    Ok(())
}

/// Partitions that stay must be what their definitions say: an encrypted one must
/// hold a readable LUKS2 header.
fn check_existing(
    disk: &dyn Disk,
    defs: &[PartitionDefinition],
    staying: &Gpt,
    whole: &Gpt,
) -> Result<(), FirstbootError> {
    let ss = staying.sector_size as u64;
    for (d, m) in defs.iter().zip(plan::match_existing(defs, staying)) {
        let (Some(i), true) = (m, d.encrypt != Encrypt::Off) else {
            continue;
        };
        let p = &staying.partitions[i];
        let number = whole
            .partitions
            .iter()
            .position(|q| q == p)
            .map_or(i + 1, |j| whole.number(j) as usize);
        let bad = |why: String| FirstbootError::Partition {
            number,
            label: p.label.clone(),
            why,
        };
        let area = header_area(disk, p, ss)?;
        if !has_magic(&area) {
            return Err(bad(format!(
                "the {} definition says Encrypt=, but this partition holds no LUKS2 header; \
                 refusing to touch it (a factory reset re-creates it{})",
                d.kind,
                if d.factory_reset {
                    ""
                } else {
                    ", once its definition has FactoryReset=yes"
                }
            )));
        }
        Luks2Header::parse(&area).map_err(|e| {
            bad(format!(
                "{e}, in both header copies: the volume cannot be opened by anyone; \
                 `osimage factory-reset request` re-creates it empty"
            ))
        })?;
    }
    Ok(())
}

/// The start of a partition, as much as any LUKS2 header copy needs (less when the
/// partition is smaller).
pub(crate) fn header_area(disk: &dyn Disk, p: &GptPartition, ss: u64) -> io::Result<Vec<u8>> {
    let mut area = vec![0u8; HEADER_AREA.min(p.sectors() * ss) as usize];
    disk.read_at(p.first_lba * ss, &mut area)?;
    Ok(area)
}

/// Writes `bytes` at `offset` in [`CHUNK`]s, each one write of the crash sweep.
fn write_chunks(disk: &mut dyn Disk, offset: u64, bytes: &[u8]) -> io::Result<()> {
    for (n, c) in bytes.chunks(CHUNK).enumerate() {
        disk.write_at(offset + (n * CHUNK) as u64, c)?;
    }
    Ok(())
}

/// Zeroes `len` bytes at `offset`, last chunk first: shredding destroys the keyslots
/// before the header that locates them. One buffer, however large `len` is (it
/// comes from a header on the disk).
fn zero_backwards(disk: &mut dyn Disk, offset: u64, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; CHUNK];
    let chunks = len.div_ceil(CHUNK as u64);
    for n in (0..chunks).rev() {
        let at = n * CHUNK as u64;
        let piece = (len - at).min(CHUNK as u64) as usize;
        disk.write_at(offset + at, &zeros[..piece])?;
    }
    Ok(())
}

/// The reset itself: mark the targets (the durable request), crypto-shred each,
/// then delete them from the table.
fn erase(disk: &mut dyn Disk, gpt: &mut Gpt, targets: &[usize]) -> Result<(), FirstbootError> {
    let ss = gpt.sector_size as u64;
    if targets
        .iter()
        .any(|&i| gpt.partitions[i].label != RESET_LABEL)
    {
        for &i in targets {
            gpt.partitions[i].label = RESET_LABEL.into();
        }
        write_gpt(disk, gpt)?;
        disk.flush()?;
    }
    for &i in targets {
        let p = &gpt.partitions[i];
        let size = p.sectors() * ss;
        let area = header_area(disk, p, ss)?;
        // Every keyslot and both header copies, even when the header no longer
        // parses (an earlier, interrupted shred): at least cryptsetup's default
        // metadata size.
        let extent = Luks2Header::parse(&area)
            .map_or(DEFAULT_METADATA_BYTES, |h| {
                h.data_offset.max(DEFAULT_METADATA_BYTES)
            })
            .min(size);
        tracing::info!(
            partition = gpt.number(i),
            bytes = extent,
            "crypto-shredding"
        );
        zero_backwards(disk, p.first_lba * ss, extent)?;
    }
    disk.flush()?;
    for &i in targets.iter().rev() {
        gpt.partitions.remove(i);
    }
    write_gpt(disk, gpt)?;
    disk.flush()?;
    Ok(())
}

/// A LUKS2 volume key, zeroed when dropped (on every path out of [`create`]).
struct VolumeKey(Vec<u8>);

impl Drop for VolumeKey {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// Makes the planned partitions: headers and wipes into free space, the recovery
/// key shown, then one table write that adds them all. On a block device, the
/// partitions to format enter that table marked for re-creation, get their file
/// systems, and take their labels in a second table write.
fn create(
    disk: &mut dyn Disk,
    gpt: &mut Gpt,
    planned: Vec<PlannedPartition>,
    mut tpm: Option<&mut Tpm>,
    binding: &Tpm2Binding,
    staging: &Path,
    show_recovery_key: &mut dyn FnMut(&RecoveryKey) -> io::Result<()>,
    mut block: Option<&mut dyn BlockDevice>,
) -> Result<Vec<AddedPartition>, FirstbootError> {
    let formatting = block.is_some();
    let phases = format::label_phases(&planned, formatting);
    let mut recovery = [0u8; 32];
    recovery.copy_from_slice(&random(32, tpm.as_deref_mut())?);
    let mut shown = RecoveryKey {
        key: String::new(),
        partitions: Vec::new(),
        luks_uuids: Vec::new(),
    };
    let mut added = Vec::new();
    // The volume keys of the encrypted partitions to format, which open them for
    // mkfs; by index in `added`.
    let mut keys: Vec<Option<VolumeKey>> = Vec::new();
    for p in planned {
        let uuid = if p.b_slot {
            crate::build::derived_uuid(
                &format!("{}-{}", gpt.disk_guid, p.first_lba),
                &format!("empty-{}", p.kind),
            )
        } else {
            random_uuid()?
        };
        let mut luks_uuid = None;
        let mut kept = None;
        if p.encrypted() {
            let volume_key = VolumeKey(random(volume_key_bytes(p.integrity), tpm.as_deref_mut())?);
            let id = random_uuid()?;
            let spec = FormatSpec {
                label: &p.label,
                uuid: id,
                volume_key: &volume_key.0,
                sector_size: gpt.sector_size,
                integrity: p.integrity,
                partition_bytes: p.size,
            };
            let with_tpm = if uses_tpm(p.encrypt) {
                tpm.as_deref_mut()
            } else {
                None
            };
            let (header, key) = format_header(staging, &spec, |luks| {
                if let Some(t) = with_tpm {
                    enroll_tpm2(luks, Existing::VolumeKey(&volume_key.0), t, binding)?;
                }
                enroll_recovery_key(luks, Existing::VolumeKey(&volume_key.0), &recovery)
                    .map(|(key, _)| key)
            })?;
            if header.bytes.len() as u64 > p.size {
                return Err(PlanError::TooSmall {
                    needs: format!("{} needs room for its LUKS2 header", p.label),
                    free_mib: p.size >> 20,
                }
                .into());
            }
            write_chunks(disk, p.offset, &header.bytes)?;
            shown.key = key;
            shown.partitions.push(p.label.clone());
            shown.luks_uuids.push(id);
            luks_uuid = Some(id);
            if formatting && format::needs_format(&p) {
                kept = Some(volume_key);
            }
        } else if !p.b_slot {
            // A stale file system signature must not make the new partition look
            // formatted.
            write_chunks(disk, p.offset, &vec![0u8; CHUNK.min(p.size as usize)])?;
        }
        added.push(AddedPartition {
            planned: p,
            uuid,
            luks_uuid,
            formatted: false,
        });
        keys.push(kept);
    }
    recovery.fill(0);
    disk.flush()?;
    if !shown.partitions.is_empty() {
        show_recovery_key(&shown).map_err(FirstbootError::RecoveryKey)?;
    }
    let first_new = gpt.partitions.len();
    for a in &added {
        // Re-created partitions fill the entries a reset freed, so nothing is
        // renumbered; a new slot goes after every entry (see `number_after_last`).
        let number = if a.planned.b_slot {
            gpt.number_after_last()
        } else {
            None
        };
        gpt.partitions.push(GptPartition {
            kind: a.planned.kind,
            uuid: a.uuid,
            label: a.planned.label.clone(),
            first_lba: a.planned.first_lba,
            last_lba: a.planned.last_lba,
            attributes: a.planned.attributes,
            number,
        });
    }
    // Pinned, so that the second table write and the device nodes agree with the
    // first.
    let numbers = gpt.numbers().map_err(PlanError::Table)?;
    for (p, n) in gpt.partitions.iter_mut().zip(numbers).skip(first_new) {
        p.number = Some(n);
    }
    for (phase, labels) in phases.iter().enumerate() {
        for (p, label) in gpt.partitions[first_new..].iter_mut().zip(labels) {
            p.label.clone_from(label);
        }
        write_gpt(disk, gpt)?;
        disk.flush()?;
        if let Some(b) = block.as_deref_mut() {
            b.sync_partitions(gpt).map_err(FirstbootError::Kernel)?;
            if phase + 1 < phases.len() {
                format_new(b, gpt, first_new, &mut added, &keys, staging)?;
            }
        }
    }
    Ok(added)
}

/// Makes the file system of every new partition that has `Format=`, starting from
/// its MakeDirectories= and MakeSymlinks= tree.
fn format_new(
    block: &mut dyn BlockDevice,
    gpt: &Gpt,
    first_new: usize,
    added: &mut [AddedPartition],
    keys: &[Option<VolumeKey>],
    staging: &Path,
) -> Result<(), FirstbootError> {
    for (k, a) in added.iter_mut().enumerate() {
        let p = &a.planned;
        let (true, Some(fs)) = (format::needs_format(p), p.format) else {
            continue;
        };
        let number = gpt.number(first_new + k);
        let failed = |error| FirstbootError::Format {
            number,
            label: p.label.clone(),
            error,
        };
        let tree = if p.make_directories.is_empty() && p.make_symlinks.is_empty() {
            None
        } else {
            let t = tempfile::Builder::new()
                .prefix("osimage-tree-")
                .tempdir_in(staging)
                .and_then(|t| {
                    format::build_tree(t.path(), &p.make_directories, &p.make_symlinks)?;
                    Ok(t)
                })
                .map_err(|e| failed(FormatError::io("building its directory tree", e)))?;
            Some(t)
        };
        block
            .format(&FormatJob {
                number,
                label: &p.label,
                uuid: a.uuid,
                format: fs,
                tree: tree.as_ref().map(|t| t.path()),
                volume_key: keys[k].as_ref().map(|v| v.0.as_slice()),
                integrity: p.integrity.is_some(),
            })
            .map_err(failed)?;
        a.formatted = true;
    }
    Ok(())
}
