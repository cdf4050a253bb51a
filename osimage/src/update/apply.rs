//! Applying an update to a disk: verify the manifest, choose a slot, stream, verify,
//! relabel, and activate by renaming the UKI into place. Every write goes through
//! [`Disk`], in an order where a crash at any point leaves the booted version whole
//! and selectable.

use std::io;
use std::sync::{Arc, mpsc};

use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use super::catalog::{self, Decision, Policy, Slot};
use super::manifest::{MANIFEST, Manifest, SIGNATURE};
use super::slots;
use super::source::{Source, SourceError};
use crate::boot::BootEntry;
use crate::boot::esp::{self, EspLocation, UKI_DIR};
use crate::disk::{Disk, read_gpt};
use crate::gpt::Gpt;
use crate::sign::verify_pkcs7_detached;
use crate::verity::sig::VeritySig;
use crate::verity::{self, VeritySuperblock};

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("manifest: {0}")]
    Manifest(String),
    #[error("{file}: sha256 is {actual}, the signed manifest says {expected}")]
    Hash {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{file} ({size} bytes) does not fit its {part} partition ({room} bytes)")]
    TooBig {
        file: String,
        part: String,
        size: u64,
        room: u64,
    },
    #[error("verification of {version} failed: {why}")]
    Verify { version: String, why: String },
    #[error("disk: {0}")]
    Disk(#[from] io::Error),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub name: String,
    /// Trusted certificate for SHA256SUMS.p7s.
    pub vendor_cert: Certificate,
    /// Trusted certificate for the verity root hash signatures.
    pub verity_cert: Certificate,
    /// The version running now (never touched); `None` for an offline disk.
    pub booted: Option<String>,
    pub policy: Policy,
    /// Boot counting tries for the new UKI.
    pub tries: u32,
    /// How many versions' UKIs to keep (InstancesMax).
    pub instances_max: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The running version, which nothing touches.
    pub booted: Option<String>,
    pub offered: Vec<catalog::Offered>,
    pub slots: Vec<Slot>,
    pub decision: Decision,
    /// The UKI file name that activated the new version.
    pub activated: Option<String>,
    pub vacuumed: Vec<String>,
}

fn boot_location(gpt: &Gpt) -> io::Result<EspLocation> {
    esp::boot_partition(gpt).ok_or_else(|| io::Error::other("the disk has no ESP or XBOOTLDR"))
}

/// The manifest, after its signature verified. Nothing else is trusted before this.
pub fn fetch_manifest(source: &Source, vendor: &Certificate) -> Result<Manifest, UpdateError> {
    let text = source.get(MANIFEST)?;
    let sig = source
        .get(SIGNATURE)
        .map_err(|e| UpdateError::Manifest(format!("no signature ({SIGNATURE}): {e}")))?;
    verify_pkcs7_detached(&sig, &text, vendor)
        .map_err(|e| UpdateError::Manifest(format!("{SIGNATURE}: {e}")))?;
    let text = std::str::from_utf8(&text).map_err(|_| UpdateError::Manifest("not UTF-8".into()))?;
    Manifest::parse(text).map_err(|e| UpdateError::Manifest(e.to_string()))
}

/// `update --check`: what is offered and what would happen. Reads only.
pub fn check(disk: &dyn Disk, source: &Source, opts: &Options) -> Result<Report, UpdateError> {
    let manifest = fetch_manifest(source, &opts.vendor_cert)?;
    let gpt = read_gpt(disk).map_err(|e| io::Error::other(e.to_string()))?;
    let slots = slots::find(&gpt, &opts.name);
    let mut offered = catalog::offered(&opts.name, manifest.files.keys().map(String::as_str));
    // A set counts as whole only if every file is really on the server (the manifest
    // may list a file that was never uploaded or was since removed).
    for o in offered.iter_mut().filter(|o| o.complete()) {
        for (part, file) in o.files.clone() {
            if !source.exists(&file)? {
                o.missing.push(part);
            }
        }
    }
    let at = boot_location(&gpt)?;
    let entries = esp::entries_readonly(disk, at)?;
    let activated: Vec<&str> = entries
        .iter()
        .filter(|e| e.name() == opts.name && !e.is_bad())
        .map(|e| e.version())
        .collect();
    let decision = catalog::decide(
        &offered,
        &slots,
        &activated,
        opts.booted.as_deref(),
        &opts.policy,
    );
    Ok(Report {
        booted: opts.booted.clone(),
        offered,
        slots,
        decision,
        activated: None,
        vacuumed: Vec::new(),
    })
}

/// Streams `file` into the partition at `offset` of `room` bytes, hashing as it goes.
///
/// Three stages overlap, so the slowest one sets the pace instead of their sum: a
/// fetch thread fills batches from the network, this thread writes them and starts
/// their writeback at once (so the final flush does not wait for a gigabyte of dirty
/// pages), and a hash thread runs the file's sha256 beside the verity leaf hashing.
/// Writes stay on this thread and in order, which the power-loss proof relies on.
#[allow(clippy::too_many_arguments)]
fn stream_into(
    disk: &mut dyn Disk,
    source: &Source,
    manifest: &Manifest,
    file: &str,
    part: &str,
    offset: u64,
    room: u64,
    observe: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<u64, UpdateError> {
    let expected = manifest
        .files
        .get(file)
        .ok_or_else(|| UpdateError::Manifest(format!("{file} is not in the manifest")))?;
    // Network chunks are small; whole batches keep writes and hashing efficient.
    const BATCH: usize = 4 << 20;
    // Two batches in flight per stage bound the memory to a few batches.
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(2);
    let (hash_tx, hash_rx) = mpsc::sync_channel::<Arc<Vec<u8>>>(2);
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<u8>>();
    let (fetched, digest, written) = std::thread::scope(|s| {
        let fetch = s.spawn(move || {
            let mut pending: Vec<u8> = Vec::with_capacity(BATCH);
            let mut seen = 0u64;
            let mut too_big = None;
            let stopped = || io::Error::other("the writer stopped");
            let result = source.stream(file, &mut |mut chunk| {
                seen += chunk.len() as u64;
                if seen > room {
                    too_big = Some(seen);
                    return Err(io::Error::other("file larger than its partition"));
                }
                while !chunk.is_empty() {
                    let take = (BATCH - pending.len()).min(chunk.len());
                    pending.extend_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                    if pending.len() == BATCH {
                        let next = spare_rx
                            .try_recv()
                            .unwrap_or_else(|_| Vec::with_capacity(BATCH));
                        full_tx
                            .send(std::mem::replace(&mut pending, next))
                            .map_err(|_| stopped())?;
                    }
                }
                Ok(())
            });
            let result = result.and_then(|n| {
                if !pending.is_empty() {
                    full_tx
                        .send(pending)
                        .map_err(|_| SourceError::Sink(stopped()))?;
                }
                Ok(n)
            });
            (result, too_big)
        });
        // The file's sha256 is serial; the verity leaves spread over the rayon pool.
        // Each gets its own thread so neither waits for the other batch by batch.
        let (leaf_tx, leaf_rx) = mpsc::sync_channel::<Arc<Vec<u8>>>(2);
        let recycle = |buf: Arc<Vec<u8>>, spare: &mpsc::Sender<Vec<u8>>| {
            if let Ok(mut buf) = Arc::try_unwrap(buf) {
                buf.clear();
                let _ = spare.send(buf);
            }
        };
        let spare = spare_tx.clone();
        let leaves = s.spawn(move || {
            for buf in leaf_rx {
                observe(&buf[..]);
                recycle(buf, &spare);
            }
        });
        let hash = s.spawn(move || {
            let mut sha = Sha256::new();
            for buf in hash_rx {
                sha.update(&buf[..]);
                recycle(buf, &spare_tx);
            }
            sha.finalize()
        });
        let mut written = 0u64;
        let mut failed = None;
        for buf in full_rx.iter() {
            let at = offset + written;
            if let Err(e) = disk.write_at(at, &buf) {
                failed = Some(e);
                break;
            }
            disk.start_writeback(at, buf.len() as u64);
            written += buf.len() as u64;
            let buf = Arc::new(buf);
            if leaf_tx.send(buf.clone()).is_err() || hash_tx.send(buf).is_err() {
                break;
            }
        }
        // Hanging up tells the fetch thread to stop and the hash thread to finish.
        drop(full_rx);
        drop(hash_tx);
        drop(leaf_tx);
        rejoin(leaves.join());
        let written = failed.map_or(Ok(written), Err);
        (rejoin(fetch.join()), rejoin(hash.join()), written)
    });
    let (size, too_big) = fetched;
    if let Some(size) = too_big {
        return Err(UpdateError::TooBig {
            file: file.into(),
            part: part.into(),
            size,
            room,
        });
    }
    // A failed write is the cause; the fetch thread only saw the hang-up.
    let written = written?;
    let size = size?;
    if size != written {
        return Err(UpdateError::Disk(io::Error::other(format!(
            "{file}: fetched {size} bytes but wrote {written}"
        ))));
    }
    let actual = hex::encode(digest);
    if &actual != expected {
        return Err(UpdateError::Hash {
            file: file.into(),
            expected: expected.clone(),
            actual,
        });
    }
    Ok(size)
}

/// A stage's result, or its panic carried on in this thread.
fn rejoin<T>(r: std::thread::Result<T>) -> T {
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Re-reads what was written and checks it: the signature over the root hash with the
/// trusted verity certificate, then the whole hash tree against the data.
pub fn verify_slot(
    disk: &dyn Disk,
    gpt: &Gpt,
    slot: &Slot,
    version: &str,
    cert: &Certificate,
) -> Result<[u8; 32], UpdateError> {
    let fail = |why: String| UpdateError::Verify {
        version: version.into(),
        why,
    };
    let ss = gpt.sector_size as u64;
    let off = |i: usize| gpt.partitions[i].first_lba * ss;
    let root = signed_root(disk, off(slot.sig_index), slot.sig_size, cert, &fail)?;
    let sb = read_superblock(disk, off(slot.verity_index), &fail)?;
    if sb.data_len() > slot.usr_size {
        return Err(fail("verity data is larger than the usr partition".into()));
    }
    let usr_off = off(slot.usr_index);
    let params = sb.params().map_err(|e| fail(e.to_string()))?;
    let tree = verity::build_with_reader(
        |o, buf| disk.read_at(usr_off + o, buf),
        sb.data_len(),
        &params,
    )
    .map_err(|e| fail(e.to_string()))?;
    check_tree(
        disk,
        &tree,
        &root,
        off(slot.verity_index),
        slot.verity_size,
        &fail,
    )?;
    Ok(root)
}

/// The root hash in a signature partition, after its PKCS#7 signature verified with
/// the trusted certificate.
fn signed_root(
    disk: &dyn Disk,
    offset: u64,
    len: u64,
    cert: &Certificate,
    fail: &dyn Fn(String) -> UpdateError,
) -> Result<[u8; 32], UpdateError> {
    let mut raw = vec![0u8; len as usize];
    disk.read_at(offset, &mut raw)?;
    let sig =
        VeritySig::from_partition(&raw).map_err(|e| fail(format!("signature partition: {e}")))?;
    sig.verified_root(cert).map_err(fail)
}

fn read_superblock(
    disk: &dyn Disk,
    offset: u64,
    fail: &dyn Fn(String) -> UpdateError,
) -> Result<VeritySuperblock, UpdateError> {
    let mut raw = [0u8; 512];
    disk.read_at(offset, &mut raw)?;
    VeritySuperblock::decode(&raw).map_err(|e| fail(e.to_string()))
}

/// The rebuilt tree must have the signed root and equal the stored hash partition.
fn check_tree(
    disk: &dyn Disk,
    tree: &verity::VerityTree,
    root: &[u8; 32],
    hash_offset: u64,
    hash_room: u64,
    fail: &dyn Fn(String) -> UpdateError,
) -> Result<(), UpdateError> {
    if &tree.root_hash != root {
        return Err(fail(format!(
            "data hashes to {}, signed root hash is {}",
            hex::encode(tree.root_hash),
            hex::encode(root)
        )));
    }
    if tree.hash_device.len() as u64 > hash_room {
        return Err(fail(
            "hash tree is larger than the usr-verity partition".into(),
        ));
    }
    let mut stored = vec![0u8; tree.hash_device.len()];
    disk.read_at(hash_offset, &mut stored)?;
    if stored != tree.hash_device {
        return Err(fail("stored hash tree differs from the data".into()));
    }
    Ok(())
}

/// Removes every UKI of `version` (any counter state) from the boot partition.
fn remove_ukis(
    disk: &mut dyn Disk,
    at: EspLocation,
    name: &str,
    version: &str,
) -> io::Result<Vec<String>> {
    let id = format!("{name}_{version}");
    let mut removed = Vec::new();
    for e in esp::entries(disk, at)?.into_iter().filter(|e| e.id == id) {
        esp::remove(disk, at, UKI_DIR, &e.file_name)?;
        removed.push(e.file_name);
    }
    Ok(removed)
}

/// The whole update. On any error before activation, the new version is not
/// selectable and the booted one is untouched.
pub fn apply(disk: &mut dyn Disk, source: &Source, opts: &Options) -> Result<Report, UpdateError> {
    let mut report = check(disk, source, opts)?;
    // Up to date only if what is there still verifies; a slot damaged on the device
    // is rewritten in place (never the booted one, which is in use).
    if let Decision::UpToDate { newest } = &report.decision
        && Some(newest.as_str()) != opts.booted.as_deref()
    {
        let gpt = read_gpt(disk).map_err(|e| io::Error::other(e.to_string()))?;
        if let Some(slot) = report
            .slots
            .iter()
            .find(|s| s.version.as_deref() == Some(newest.as_str()))
            && let Err(e) = verify_slot(disk, &gpt, slot, newest, &opts.verity_cert)
        {
            tracing::warn!("installed {newest} is damaged ({e}); repairing it");
            report.decision = Decision::Install {
                version: newest.clone(),
                slot: slot.usr_index,
                replaces: None,
            };
        }
    }
    let Decision::Install {
        version,
        slot: slot_index,
        replaces,
    } = report.decision.clone()
    else {
        return Ok(report);
    };
    let manifest = fetch_manifest(source, &opts.vendor_cert)?;
    let gpt = read_gpt(disk).map_err(|e| io::Error::other(e.to_string()))?;
    let at = boot_location(&gpt)?;
    // Leftovers of an interrupted run go first; they are never selectable anyway.
    esp::clean_stale(disk, at, UKI_DIR)?;
    let slot = report
        .slots
        .iter()
        .find(|s| s.usr_index == slot_index)
        .cloned()
        .ok_or_else(|| io::Error::other("chosen slot vanished"))?;
    let offer = report
        .offered
        .iter()
        .find(|o| o.version == version)
        .cloned()
        .ok_or_else(|| io::Error::other("chosen version vanished"))?;

    // 1. Retire what the slot held: its UKIs first (so nothing can boot it), then the
    //    label (so nothing mistakes it for a whole version). A slot left `_empty` by
    //    an interrupted run is reused as it is.
    if let Some(old) = &replaces {
        report
            .vacuumed
            .extend(remove_ukis(disk, at, &opts.name, old)?);
    }
    // Also any UKI of the version being installed (a corrupt earlier attempt).
    remove_ukis(disk, at, &opts.name, &version)?;
    if slot.version.is_some() {
        slots::relabel(disk, &slot, slots::EMPTY, None)?;
    }

    // 2. Stream the three partitions, each checked against the signed manifest: the
    //    small signature and hash tree first, so that /usr is verified while it
    //    streams and is read exactly once.
    let ss = gpt.sector_size as u64;
    let off = |i: usize| gpt.partitions[i].first_lba * ss;
    let file_of = |part: &str| {
        offer
            .file(part)
            .map(str::to_owned)
            .ok_or_else(|| UpdateError::Manifest(format!("no {part} file")))
    };
    let fail = |why: String| UpdateError::Verify {
        version: version.clone(),
        why,
    };
    let sig_file = file_of("usr-verity-sig")?;
    let size = stream_into(
        disk,
        source,
        &manifest,
        &sig_file,
        "usr-verity-sig",
        off(slot.sig_index),
        slot.sig_size,
        &mut |_| {},
    )?;
    // Clear what an older, longer file left behind: the JSON ends at the first NUL.
    let tail = (slot.sig_size - size).min(1 << 20);
    if tail > 0 {
        disk.write_at(off(slot.sig_index) + size, &vec![0u8; tail as usize])?;
    }
    let root = signed_root(disk, off(slot.sig_index), size, &opts.verity_cert, &fail)?;

    let verity_file = file_of("usr-verity")?;
    let hash_len = stream_into(
        disk,
        source,
        &manifest,
        &verity_file,
        "usr-verity",
        off(slot.verity_index),
        slot.verity_size,
        &mut |_| {},
    )?;
    let sb = read_superblock(disk, off(slot.verity_index), &fail)?;
    let mut leaves = verity::LeafHasher::new(sb.params().map_err(|e| fail(e.to_string()))?)
        .map_err(|e| fail(e.to_string()))?;
    let usr_file = file_of("usr")?;
    stream_into(
        disk,
        source,
        &manifest,
        &usr_file,
        "usr",
        off(slot.usr_index),
        slot.usr_size,
        &mut |chunk| leaves.update(chunk),
    )?;

    // 3. The tree over what streamed must be the signed root and the stored tree,
    //    before anything points at the slot.
    let tree = leaves.finish().map_err(|e| fail(e.to_string()))?;
    if tree.hash_device.len() as u64 != hash_len {
        return Err(fail(
            "the hash partition does not match the data's size".into(),
        ));
    }
    check_tree(
        disk,
        &tree,
        &root,
        off(slot.verity_index),
        slot.verity_size,
        &fail,
    )?;

    // 4. Label the slot with its version and root-hash-derived UUIDs (one table write).
    slots::relabel(
        disk,
        &slot,
        &format!("{}_{version}", opts.name),
        Some(&root),
    )?;

    // 5. Activate: the UKI appears under its counted name in one rename.
    let uki_file = offer
        .file("efi")
        .ok_or_else(|| UpdateError::Manifest("no UKI".into()))?;
    let uki = source.get(uki_file)?;
    let actual = hex::encode(Sha256::digest(&uki));
    let expected = manifest.files.get(uki_file).cloned().unwrap_or_default();
    if actual != expected {
        return Err(UpdateError::Hash {
            file: uki_file.into(),
            expected,
            actual,
        });
    }
    let cmdline = crate::uki::pe::section_data(&uki, ".cmdline")
        .ok()
        .flatten()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_default();
    if !cmdline
        .split_whitespace()
        .any(|w| w == format!("usrhash={}", hex::encode(root)))
    {
        return Err(UpdateError::Verify {
            version: version.clone(),
            why: "the UKI's command line does not carry this slot's usrhash=".into(),
        });
    }
    let name = BootEntry::format(&format!("{}_{version}", opts.name), Some(opts.tries), None);
    esp::install_file(disk, at, UKI_DIR, &name, &uki)?;
    report.activated = Some(name);

    // 6. InstancesMax: drop the oldest UKIs beyond it, never the booted or the new one.
    let mut versions: Vec<String> = esp::entries(disk, at)?
        .into_iter()
        .filter(|e| e.name() == opts.name)
        .map(|e| e.version().to_owned())
        .collect();
    versions.sort_by(|a, b| crate::version::compare(a, b));
    versions.dedup();
    while versions.len() > opts.instances_max {
        let Some(pos) = versions
            .iter()
            .position(|v| *v != version && Some(v.as_str()) != opts.booted.as_deref())
        else {
            break;
        };
        let old = versions.remove(pos);
        report
            .vacuumed
            .extend(remove_ukis(disk, at, &opts.name, &old)?);
        let gpt = read_gpt(disk).map_err(|e| io::Error::other(e.to_string()))?;
        if let Some(s) = slots::find(&gpt, &opts.name)
            .into_iter()
            .find(|s| s.version.as_deref() == Some(old.as_str()))
        {
            slots::relabel(disk, &s, slots::EMPTY, None)?;
        }
    }
    disk.flush()?;
    report.decision = Decision::Install {
        version,
        slot: slot_index,
        replaces,
    };
    Ok(report)
}
