//! usr slots on a disk: finding them, relabelling them, adding empty ones.

use std::io;

use uuid::Uuid;

use super::catalog::Slot;
use crate::disk::{Disk, read_gpt, write_gpt};
use crate::gpt::{ATTR_READ_ONLY, Gpt, GptPartition, PartitionType};

pub const EMPTY: &str = "_empty";

fn gpt_err(e: crate::gpt::GptError) -> io::Error {
    io::Error::other(e.to_string())
}

/// The n-th usr, usr-verity and usr-verity-sig partitions (in table order) form slot
/// n. Slots labelled for another OS name are left out.
pub fn find(gpt: &Gpt, name: &str) -> Vec<Slot> {
    let of = |k: PartitionType| -> Vec<usize> {
        gpt.partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.kind == k)
            .map(|(i, _)| i)
            .collect()
    };
    let (usr, verity, sig) = (
        of(PartitionType::Usr),
        of(PartitionType::UsrVerity),
        of(PartitionType::UsrVeritySig),
    );
    let ss = gpt.sector_size as u64;
    let size = |i: usize| gpt.partitions[i].sectors() * ss;
    let prefix = format!("{name}_");
    usr.iter()
        .zip(&verity)
        .zip(&sig)
        .filter_map(|((&u, &v), &s)| {
            let label = &gpt.partitions[u].label;
            let version = if label == EMPTY {
                None
            } else {
                Some(label.strip_prefix(&prefix)?.to_owned())
            };
            Some(Slot {
                usr_index: u,
                verity_index: v,
                sig_index: s,
                version,
                usr_size: size(u),
                verity_size: size(v),
                sig_size: size(s),
            })
        })
        .collect()
}

/// The `usrhash=` on a kernel command line. systemd's generators let the last one win.
pub fn usrhash(cmdline: &str) -> Option<&str> {
    cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("usrhash="))
        .next_back()
}

/// The version running from this disk: the slot whose usr partition UUID is the first
/// half of the running `usrhash=`, the identity [`relabel`] and `osimage build` give a
/// slot, and the one systemd's gpt-auto logic looks for. `None` when the command line
/// names no root hash or a root hash of no slot here (the system runs from elsewhere).
pub fn booted_version(gpt: &Gpt, name: &str, cmdline: &str) -> Option<String> {
    let hash = usrhash(cmdline)?;
    let mut half = [0u8; 16];
    hex::decode_to_slice(hash.get(..32)?, &mut half).ok()?;
    let uuid = Uuid::from_bytes(half);
    find(gpt, name)
        .into_iter()
        .find(|s| gpt.partitions[s.usr_index].uuid == uuid)?
        .version
}

/// Gives a slot's three partitions a new label and identity in one table write, so no
/// slot is ever half-labelled. With a root hash, the usr and usr-verity UUIDs become
/// its halves, which is how `usrhash=` finds them; without one (`_empty`), fresh
/// derived UUIDs that no root hash can match.
pub fn relabel(
    disk: &mut dyn Disk,
    slot: &Slot,
    label: &str,
    root_hash: Option<&[u8; 32]>,
) -> io::Result<()> {
    let mut gpt = read_gpt(disk).map_err(gpt_err)?;
    let ids: [Uuid; 3] = match root_hash {
        Some(h) => {
            let mut a = [0u8; 16];
            let mut b = [0u8; 16];
            a.copy_from_slice(&h[..16]);
            b.copy_from_slice(&h[16..]);
            [
                Uuid::from_bytes(a),
                Uuid::from_bytes(b),
                crate::build::derived_uuid(&hex::encode(h), "usr-verity-sig"),
            ]
        }
        None => {
            let seed = format!("{}-{}", gpt.disk_guid, slot.usr_index);
            [
                crate::build::derived_uuid(&seed, "empty-usr"),
                crate::build::derived_uuid(&seed, "empty-usr-verity"),
                crate::build::derived_uuid(&seed, "empty-usr-verity-sig"),
            ]
        }
    };
    for (i, id) in [slot.usr_index, slot.verity_index, slot.sig_index]
        .into_iter()
        .zip(ids)
    {
        let p = gpt
            .partitions
            .get_mut(i)
            .ok_or_else(|| io::Error::other("slot partition vanished from the table"))?;
        p.label = label.to_owned();
        p.uuid = id;
    }
    write_gpt(disk, &gpt)
}

/// Adds an `_empty` slot with the given sizes in the free space at the end of the
/// disk, first moving the backup table to the disk's real end (a grown image).
pub fn add_empty(disk: &mut dyn Disk, usr: u64, verity: u64, sig: u64) -> io::Result<()> {
    let mut gpt = read_gpt(disk).map_err(gpt_err)?;
    let ss = gpt.sector_size as u64;
    gpt.total_sectors = disk.size() / ss;
    let align = (1u64 << 20) / ss;
    let mut next = gpt
        .partitions
        .iter()
        .map(|p| p.last_lba + 1)
        .max()
        .unwrap_or(gpt.first_usable_lba());
    let seed = format!("{}-{}", gpt.disk_guid, gpt.partitions.len());
    for (kind, bytes) in [
        (PartitionType::Usr, usr),
        (PartitionType::UsrVerity, verity),
        (PartitionType::UsrVeritySig, sig),
    ] {
        let first = next.div_ceil(align) * align;
        let sectors = bytes.div_ceil(ss);
        let p = GptPartition {
            kind,
            uuid: crate::build::derived_uuid(&seed, &format!("empty-{kind}")),
            label: EMPTY.into(),
            first_lba: first,
            last_lba: first + sectors - 1,
            attributes: ATTR_READ_ONLY,
            number: gpt.number_after_last(),
        };
        next = p.last_lba + 1;
        gpt.partitions.push(p);
    }
    gpt.validate()
        .map_err(|e| io::Error::other(format!("no room for another slot: {e}")))?;
    write_gpt(disk, &gpt)
}

/// The version a built image carries: its slot and its UKI.
#[derive(Debug, Clone)]
pub struct BuiltVersion {
    pub name: String,
    pub version: String,
    pub slot: Slot,
    pub uki: Vec<u8>,
}

/// Reads the one version of a built image (`osimage build` output): the usr slot
/// labelled `<name>_<version>` and the UKI of that id on its boot partition.
pub fn built_version(disk: &mut dyn Disk, gpt: &Gpt) -> Result<BuiltVersion, String> {
    let usr = gpt
        .partitions
        .iter()
        .find(|p| p.kind == PartitionType::Usr && p.label != EMPTY)
        .ok_or("no usr partition with a version label")?;
    let (name, version) = usr
        .label
        .split_once('_')
        .ok_or_else(|| format!("usr label `{}` is not <name>_<version>", usr.label))?;
    let (name, version) = (name.to_owned(), version.to_owned());
    let slot = find(gpt, &name)
        .into_iter()
        .find(|s| s.version.as_deref() == Some(version.as_str()))
        .ok_or("usr, usr-verity and usr-verity-sig partitions do not form a slot")?;
    let at = crate::boot::esp::boot_partition(gpt).ok_or("no ESP or XBOOTLDR")?;
    let id = format!("{name}_{version}");
    let entry = crate::boot::esp::entries(disk, at)
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| format!("no UKI for {id}"))?;
    let uki = crate::boot::esp::read_file(
        disk,
        at,
        &format!("{}/{}", crate::boot::esp::UKI_DIR, entry.file_name),
    )
    .map_err(|e| e.to_string())?
    .ok_or("the UKI vanished")?;
    Ok(BuiltVersion {
        name,
        version,
        slot,
        uki,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(kind: PartitionType, label: &str, uuid: u128, at: u64) -> GptPartition {
        GptPartition {
            kind,
            uuid: Uuid::from_u128(uuid),
            label: label.into(),
            first_lba: at,
            last_lba: at + 7,
            attributes: ATTR_READ_ONLY,
            number: None,
        }
    }

    #[test]
    fn the_booted_version_is_the_slot_named_by_usrhash() {
        let a = 0x0123_4567_89ab_cdef_0011_2233_4455_6677u128;
        let gpt = Gpt {
            disk_guid: Uuid::nil(),
            sector_size: 512,
            total_sectors: 1000,
            partitions: vec![
                part(PartitionType::Usr, "tessera_1.0", a, 100),
                part(PartitionType::UsrVerity, "tessera_1.0", 2, 108),
                part(PartitionType::UsrVeritySig, "tessera_1.0", 3, 116),
                part(PartitionType::Usr, "tessera_2.0", 4, 124),
                part(PartitionType::UsrVerity, "tessera_2.0", 5, 132),
                part(PartitionType::UsrVeritySig, "tessera_2.0", 6, 140),
            ],
        };
        let hash = format!("{a:032x}{:032x}", 0xfeedu128);
        let line = format!("quiet usrhash={hash} ro");
        assert_eq!(
            booted_version(&gpt, "tessera", &line).as_deref(),
            Some("1.0")
        );
        // The last usrhash= wins; one matching nothing here means another disk.
        let line = format!("usrhash={hash} usrhash={:064x}", 7);
        assert_eq!(booted_version(&gpt, "tessera", &line), None);
        assert_eq!(booted_version(&gpt, "tessera", "quiet ro"), None);
        assert_eq!(booted_version(&gpt, "tessera", "usrhash=zz"), None);
        assert_eq!(
            booted_version(&gpt, "other", &format!("usrhash={hash}")),
            None
        );
    }
}
