//! What firstboot adds to a disk, worked out from the definitions and the partition
//! table alone: pure, so the plan `--dry-run` prints is the plan that runs.
//!
//! Definitions match existing partitions the way systemd-repart matches them: the
//! n-th definition of a type is the n-th partition of that type. Nothing that exists
//! is moved or resized; new partitions go into free space only.

use serde::Serialize;

use crate::definition::partition::{Encrypt, IntegrityAlgorithm};
use crate::definition::{FsFormat, MakeSymlink, PartitionDefinition};
use crate::gpt::{ATTR_READ_ONLY, Gpt, GptError, PartitionType};
use crate::install::free_extents;
use crate::update::slots::EMPTY;

/// The label a partition carries between "a factory reset has started on it" and its
/// deletion: the request made durable on the disk itself, so a reset started from a
/// one-boot command line still finishes after a power cut.
pub const RESET_LABEL: &str = "_factory-reset";

const MIB: u64 = 1 << 20;
/// systemd-repart's default minimum partition size.
pub const DEFAULT_MIN_BYTES: u64 = 10 * MIB;
/// LUKS2 metadata with cryptsetup's defaults: what an encrypted partition needs
/// before its first byte of data.
pub const LUKS_METADATA_BYTES: u64 = 16 * MIB;
/// Room for dm-integrity's superblock and journal in an `Integrity=inline` volume
/// (the kernel sizes its journal to the device, within this on small ones).
pub const INTEGRITY_METADATA_BYTES: u64 = 64 * MIB;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the partition table on the disk is inconsistent ({0}); refusing to write")]
    Table(GptError),
    #[error("{0}")]
    Conflict(String),
    #[error(
        "the disk is too small for the partition definitions: {needs}, but the largest \
         free area is {free_mib} MiB; nothing was written"
    )]
    TooSmall { needs: String, free_mib: u64 },
}

/// One partition to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedPartition {
    #[serde(rename = "type")]
    pub kind: PartitionType,
    pub label: String,
    pub first_lba: u64,
    pub last_lba: u64,
    pub offset: u64,
    pub size: u64,
    pub encrypt: Encrypt,
    /// The tag algorithm of an `Integrity=inline` volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<IntegrityAlgorithm>,
    pub format: Option<FsFormat>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub make_directories: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub make_symlinks: Vec<MakeSymlink>,
    pub attributes: u64,
    /// An `_empty` B slot for updates, not a definition of its own.
    pub b_slot: bool,
}

impl PlannedPartition {
    pub fn encrypted(&self) -> bool {
        self.encrypt != Encrypt::Off
    }
}

fn is_slot(kind: PartitionType) -> bool {
    matches!(
        kind,
        PartitionType::Usr | PartitionType::UsrVerity | PartitionType::UsrVeritySig
    )
}

/// For each definition, the index of the existing partition it describes, if any.
/// Partitions being reset (labelled [`RESET_LABEL`]) describe nothing: they are on
/// their way out.
pub fn match_existing(defs: &[PartitionDefinition], gpt: &Gpt) -> Vec<Option<usize>> {
    let mut taken = vec![false; gpt.partitions.len()];
    defs.iter()
        .map(|d| {
            let i = gpt
                .partitions
                .iter()
                .enumerate()
                .position(|(i, p)| !taken[i] && p.kind == d.kind && p.label != RESET_LABEL)?;
            taken[i] = true;
            Some(i)
        })
        .collect()
}

/// The existing partitions a factory reset erases: those matching a
/// `FactoryReset=yes` definition, and any a reset already started on.
pub fn reset_targets(defs: &[PartitionDefinition], gpt: &Gpt) -> Vec<usize> {
    let mut out: Vec<usize> = match_existing(defs, gpt)
        .into_iter()
        .zip(defs)
        .filter_map(|(m, d)| m.filter(|_| d.factory_reset))
        .collect();
    out.extend(
        gpt.partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.label == RESET_LABEL)
            .map(|(i, _)| i),
    );
    out.sort_unstable();
    out.dedup();
    out
}

/// Rules a definition set must follow before firstboot acts on it.
pub fn check_definitions(defs: &[PartitionDefinition]) -> Result<(), PlanError> {
    for d in defs {
        let kind = d.kind;
        if d.factory_reset && (is_slot(kind) || kind == PartitionType::Esp) {
            return Err(PlanError::Conflict(format!(
                "the {kind} definition has FactoryReset=yes: a reset never touches the usr \
                 slots or the ESP"
            )));
        }
        if d.integrity().is_some() && d.encrypt == Encrypt::Off {
            return Err(PlanError::Conflict(format!(
                "the {} definition: {}",
                default_label(d),
                crate::definition::partition::INTEGRITY_NEEDS_ENCRYPT
            )));
        }
        if is_slot(kind) && d.encrypt != Encrypt::Off {
            return Err(PlanError::Conflict(format!(
                "the {kind} definition has Encrypt=: usr slots are verity-protected, not encrypted"
            )));
        }
    }
    Ok(())
}

/// The minimum and maximum bytes of a new partition.
fn bounds(d: &PartitionDefinition) -> (u64, Option<u64>) {
    let mut min = d.size_min_bytes.map_or(DEFAULT_MIN_BYTES, |s| s.0);
    if d.encrypt != Encrypt::Off {
        min = min.max(LUKS_METADATA_BYTES + DEFAULT_MIN_BYTES);
    }
    if d.integrity().is_some() {
        // dm-integrity's superblock and journal come after the LUKS2 metadata.
        min = min.max(LUKS_METADATA_BYTES + INTEGRITY_METADATA_BYTES + DEFAULT_MIN_BYTES);
    }
    let max = d.size_max_bytes.map(|s| s.0.max(min));
    // Whole MiB; a size too large for any disk saturates and then fits nowhere.
    (
        min.div_ceil(MIB).saturating_mul(MIB),
        max.map(|m| m / MIB * MIB),
    )
}

fn default_label(d: &PartitionDefinition) -> String {
    d.label.clone().unwrap_or_else(|| d.kind.to_string())
}

/// Plans the partitions to add. `gpt.total_sectors` must be the disk's real size (a
/// disk larger than the image it was installed from has its free space at the end).
pub fn plan(defs: &[PartitionDefinition], gpt: &Gpt) -> Result<Vec<PlannedPartition>, PlanError> {
    gpt.validate().map_err(PlanError::Table)?;
    check_definitions(defs)?;
    let ss = gpt.sector_size as u64;
    let align = MIB / ss;
    let mut free = free_extents(gpt);
    let matched = match_existing(defs, gpt);
    let mut out = Vec::new();
    let planned =
        |kind, label: String, first: u64, sectors: u64, d: &PartitionDefinition| PlannedPartition {
            kind,
            label,
            first_lba: first,
            last_lba: first + sectors - 1,
            offset: first * ss,
            size: sectors * ss,
            encrypt: d.encrypt,
            integrity: d.integrity(),
            format: d.format,
            make_directories: d.make_directories.clone(),
            make_symlinks: d.make_symlinks.clone(),
            attributes: d.attributes(),
            b_slot: false,
        };

    // The B slot: a second usr, usr-verity and usr-verity-sig, as large as the A
    // slot (an update must fit), first fit.
    for d in defs.iter().filter(|d| is_slot(d.kind)) {
        let existing: Vec<_> = gpt.partitions.iter().filter(|p| p.kind == d.kind).collect();
        let a = match existing.as_slice() {
            [] => {
                return Err(PlanError::Conflict(format!(
                    "there is no {} partition: firstboot completes an installed disk \
                     (osimage install), it does not install one",
                    d.kind
                )));
            }
            [a] => a,
            _ => continue,
        };
        let bytes = (a.sectors() * ss).max(d.size_min_bytes.map_or(0, |s| s.0));
        let sectors = bytes.div_ceil(ss).div_ceil(align).saturating_mul(align);
        let (first, _) = crate::install::allocate(&mut free, sectors.saturating_mul(ss), ss)
            .ok_or_else(|| PlanError::TooSmall {
                needs: format!("the B slot's {} needs {} MiB", d.kind, bytes.div_ceil(MIB)),
                free_mib: largest(&free, align) * ss / MIB,
            })?;
        let mut p = planned(d.kind, EMPTY.into(), first, sectors, d);
        p.attributes |= ATTR_READ_ONLY;
        p.b_slot = true;
        out.push(p);
    }

    let wanted: Vec<&PartitionDefinition> = defs
        .iter()
        .zip(&matched)
        .filter(|(d, m)| !is_slot(d.kind) && m.is_none())
        .map(|(d, _)| d)
        .collect();
    if let Some(d) = wanted
        .iter()
        .find(|d| matches!(d.kind, PartitionType::Esp | PartitionType::Xbootldr))
    {
        return Err(PlanError::Conflict(format!(
            "there is no {} partition; firstboot runs on a disk that booted, which has one",
            d.kind
        )));
    }
    if wanted.is_empty() {
        return Ok(out);
    }
    for d in &wanted {
        super::format::check_creatable(d).map_err(PlanError::Conflict)?;
    }

    // Each of the rest goes, at its minimum, into a free area: fixed-size ones first,
    // each into the tightest area it fits (after a reset, the hole its predecessor
    // left), then growable ones into the roomiest. Each area's spare room is then
    // shared among its partitions that may grow, so root fills the disk. Within an
    // area, partitions follow definition order.
    let units = |bytes: u64| bytes / ss / align;
    let mut areas: Vec<(u64, u64, Vec<usize>)> = free
        .iter()
        .map(|&(a, b)| {
            let s = a.div_ceil(align) * align;
            (s, (b + 1).saturating_sub(s) / align, Vec::new())
        })
        .collect();
    let mins: Vec<u64> = wanted.iter().map(|d| units(bounds(d).0)).collect();
    let caps: Vec<Option<u64>> = wanted.iter().map(|d| bounds(d).1.map(units)).collect();
    let mut room: Vec<u64> = areas.iter().map(|a| a.1).collect();
    let fixed = |i: usize| caps[i] == Some(mins[i]);
    let mut order: Vec<usize> = (0..wanted.len()).filter(|&i| fixed(i)).collect();
    order.extend((0..wanted.len()).filter(|&i| !fixed(i)));
    for i in order {
        let min = mins[i];
        let fits = (0..room.len()).filter(|&k| room[k] >= min);
        let chosen = if fixed(i) {
            fits.min_by_key(|&k| room[k])
        } else {
            fits.max_by_key(|&k| room[k])
        };
        let Some(k) = chosen else {
            let needs = wanted
                .iter()
                .zip(&mins)
                .map(|(d, m)| {
                    format!(
                        "{} {} MiB",
                        default_label(d),
                        m.saturating_mul(align * ss) / MIB
                    )
                })
                .collect::<Vec<_>>()
                .join(" + ");
            let total = mins.iter().fold(0u64, |a, &m| a.saturating_add(m));
            return Err(PlanError::TooSmall {
                needs: format!("{needs} = {} MiB", total.saturating_mul(align * ss) / MIB),
                free_mib: areas.iter().map(|a| a.1).max().unwrap_or(0) * align * ss / MIB,
            });
        };
        room[k] -= min;
        areas[k].2.push(i);
    }
    for area in &mut areas {
        area.2.sort_unstable();
    }
    let mut sizes = mins.clone();
    for ((_, _, members), mut extra) in areas.iter().zip(room) {
        loop {
            let growable: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&i| caps[i].is_none_or(|c| c > sizes[i]))
                .collect();
            if growable.is_empty() || extra == 0 {
                break;
            }
            let share = (extra / growable.len() as u64).max(1);
            for i in growable {
                let g = share
                    .min(caps[i].map_or(u64::MAX, |c| c - sizes[i]))
                    .min(extra);
                sizes[i] += g;
                extra -= g;
            }
        }
    }
    for (start, _, members) in &areas {
        let mut next = *start;
        for &i in members {
            let sectors = sizes[i] * align;
            out.push(planned(
                wanted[i].kind,
                default_label(wanted[i]),
                next,
                sectors,
                wanted[i],
            ));
            next += sectors;
        }
    }
    Ok(out)
}

fn largest(free: &[(u64, u64)], align: u64) -> u64 {
    free.iter()
        .map(|&(a, b)| (b + 1).saturating_sub(a.div_ceil(align) * align))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::{Size, VerityRole};
    use crate::gpt::GptPartition;
    use uuid::Uuid;

    fn part(kind: PartitionType, label: &str, first_mib: u64, mib: u64) -> GptPartition {
        GptPartition {
            kind,
            uuid: Uuid::nil(),
            label: label.into(),
            first_lba: first_mib * 2048,
            last_lba: (first_mib + mib) * 2048 - 1,
            attributes: 0,
            number: None,
        }
    }

    fn installed(disk_mib: u64) -> Gpt {
        Gpt {
            disk_guid: Uuid::nil(),
            sector_size: 512,
            total_sectors: disk_mib * 2048,
            partitions: vec![
                part(PartitionType::Esp, "ESP", 1, 8),
                part(PartitionType::Usr, "os_1", 9, 16),
                part(PartitionType::UsrVerity, "os_1", 25, 2),
                part(PartitionType::UsrVeritySig, "os_1", 27, 1),
            ],
        }
    }

    fn def(
        kind: PartitionType,
        min: u64,
        max: Option<u64>,
        encrypt: Encrypt,
    ) -> PartitionDefinition {
        let mut d = PartitionDefinition::new(kind);
        d.size_min_bytes = Some(Size(min * MIB));
        d.size_max_bytes = max.map(|m| Size(m * MIB));
        d.encrypt = encrypt;
        if is_slot(kind) {
            d.verity = match kind {
                PartitionType::Usr => VerityRole::Data,
                PartitionType::UsrVerity => VerityRole::Hash,
                _ => VerityRole::Signature,
            };
        }
        d
    }

    fn defs() -> Vec<PartitionDefinition> {
        vec![
            def(PartitionType::Esp, 8, None, Encrypt::Off),
            def(PartitionType::Usr, 16, None, Encrypt::Off),
            def(PartitionType::UsrVerity, 2, None, Encrypt::Off),
            def(PartitionType::UsrVeritySig, 1, None, Encrypt::Off),
            def(PartitionType::Root, 64, None, Encrypt::Tpm2),
            def(PartitionType::Swap, 32, Some(32), Encrypt::Tpm2),
        ]
    }

    #[test]
    fn adds_a_b_slot_and_fills_the_rest_with_root() {
        let gpt = installed(256);
        let p = plan(&defs(), &gpt).unwrap();
        let kinds: Vec<_> = p.iter().map(|p| (p.kind, p.label.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (PartitionType::Usr, EMPTY),
                (PartitionType::UsrVerity, EMPTY),
                (PartitionType::UsrVeritySig, EMPTY),
                (PartitionType::Root, "root"),
                (PartitionType::Swap, "swap"),
            ]
        );
        assert_eq!(p[0].size, 16 * MIB);
        assert!(
            p[..3]
                .iter()
                .all(|p| p.b_slot && p.attributes & ATTR_READ_ONLY != 0)
        );
        assert_eq!(p[4].size, 32 * MIB, "swap is capped at its maximum");
        let end = p[4].last_lba;
        assert!(
            gpt.last_usable_lba() - end < 2048,
            "root grows to fill the disk"
        );
        let mut all = gpt.clone();
        all.partitions.extend(p.iter().map(|p| GptPartition {
            kind: p.kind,
            uuid: Uuid::nil(),
            label: p.label.clone(),
            first_lba: p.first_lba,
            last_lba: p.last_lba,
            attributes: p.attributes,
            number: None,
        }));
        all.validate().unwrap();
        assert!(p.iter().all(|p| p.first_lba % 2048 == 0));
        assert!(
            plan(&defs(), &all).unwrap().is_empty(),
            "a second run adds nothing"
        );
    }

    #[test]
    fn after_a_reset_the_holes_are_filled_in_definition_order() {
        let mut gpt = installed(256);
        gpt.partitions.extend([
            part(PartitionType::Usr, EMPTY, 28, 16),
            part(PartitionType::UsrVerity, EMPTY, 44, 2),
            part(PartitionType::UsrVeritySig, EMPTY, 46, 1),
            // root (47..200) and swap (224..256) were erased; home stays between.
            part(PartitionType::Home, "home", 200, 24),
        ]);
        gpt.total_sectors = 257 * 2048;
        let mut d = defs();
        let mut home = PartitionDefinition::new(PartitionType::Home);
        home.size_min_bytes = Some(Size(24 * MIB));
        d.insert(5, home);
        let p = plan(&d, &gpt).unwrap();
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(
            (p[0].kind, p[0].offset, p[0].size),
            (PartitionType::Root, 47 * MIB, 153 * MIB)
        );
        assert_eq!(
            (p[1].kind, p[1].offset, p[1].size),
            (PartitionType::Swap, 224 * MIB, 32 * MIB)
        );
    }

    #[test]
    fn a_disk_too_small_names_what_it_needs() {
        let e = plan(&defs(), &installed(100)).unwrap_err().to_string();
        assert!(e.contains("root 64 MiB + swap 32 MiB = 96 MiB"), "{e}");
        assert!(e.contains("nothing was written"), "{e}");
    }

    #[test]
    fn an_absurd_size_in_a_definition_is_too_small_not_a_panic() {
        let mut d = defs();
        d[4].size_min_bytes = Some(Size(u64::MAX));
        assert!(matches!(
            plan(&d, &installed(256)),
            Err(PlanError::TooSmall { .. })
        ));
        let mut d = defs();
        d[1].size_min_bytes = Some(Size(u64::MAX - 3));
        assert!(matches!(
            plan(&d, &installed(256)),
            Err(PlanError::TooSmall { .. })
        ));
    }

    #[test]
    fn foreign_partitions_are_worked_around_and_inconsistent_tables_refused() {
        let mut gpt = installed(512);
        let other = PartitionType::Other(Uuid::from_u128(7));
        gpt.partitions.push(part(other, "windows", 200, 100));
        let p = plan(&defs(), &gpt).unwrap();
        for n in &p {
            assert!(
                n.last_lba < 200 * 2048 || n.first_lba >= 300 * 2048,
                "{n:?}"
            );
        }
        gpt.partitions.push(part(other, "bad", 250, 100));
        assert!(matches!(plan(&defs(), &gpt), Err(PlanError::Table(_))));
    }

    #[test]
    fn reset_targets_follow_factory_reset_and_the_durable_label() {
        let mut d = defs();
        d[4].factory_reset = true;
        let mut gpt = installed(256);
        gpt.partitions
            .push(part(PartitionType::Root, "root", 40, 64));
        gpt.partitions
            .push(part(PartitionType::Swap, RESET_LABEL, 110, 32));
        assert_eq!(reset_targets(&d, &gpt), [4, 5]);
        let mut bad = defs();
        bad[1].factory_reset = true;
        assert!(check_definitions(&bad).is_err());
    }
}
