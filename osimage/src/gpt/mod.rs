//! GUID Partition Tables (UEFI 2.10 §5.3): encoding, decoding, and the attribute bits
//! the Discoverable Partitions Specification gives meaning to.
//!
//! [`Gpt::encode`] is pure: it returns the byte ranges to write (protective MBR,
//! primary header and entries, backup entries and header), so a caller decides how
//! and when they reach a disk.

pub mod types;

use uuid::Uuid;

pub use types::PartitionType;

/// GPT attribute bit 60: the partition is read-only (DPS).
pub const ATTR_READ_ONLY: u64 = 1 << 60;
/// GPT attribute bit 59: grow the file system to the partition (DPS).
pub const ATTR_GROW_FILE_SYSTEM: u64 = 1 << 59;
/// GPT attribute bit 63: do not mount automatically (DPS).
pub const ATTR_NO_AUTO: u64 = 1 << 63;

const SIGNATURE: &[u8; 8] = b"EFI PART";
const REVISION: u32 = 0x0001_0000;
const HEADER_SIZE: u32 = 92;
pub const ENTRIES: u32 = 128;
pub const ENTRY_SIZE: u32 = 128;
const ENTRIES_BYTES: u64 = (ENTRIES * ENTRY_SIZE) as u64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GptError {
    #[error("sector size {0} is not 512 or 4096")]
    SectorSize(u32),
    #[error("no GPT found: {0}")]
    NotFound(String),
    #[error("GPT is corrupt: {0}")]
    Corrupt(String),
    #[error("partition {index} ({label}) {why}")]
    BadPartition {
        index: usize,
        label: String,
        why: String,
    },
    #[error("label `{0}` is longer than 36 UTF-16 units")]
    LabelTooLong(String),
}

/// One partition entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GptPartition {
    #[serde(rename = "type")]
    pub kind: PartitionType,
    pub uuid: Uuid,
    pub label: String,
    /// First and last sector, inclusive, as GPT stores them.
    pub first_lba: u64,
    pub last_lba: u64,
    pub attributes: u64,
    /// Its entry number (1-based) in the table. Entries keep their numbers, as
    /// libfdisk and repart leave them, so deleting one partition renames no other
    /// (`/dev/sda9` stays `/dev/sda9`). `None` for a new one: it takes the lowest free
    /// entry when the table is written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
}

impl GptPartition {
    /// Sectors spanned; 0 for an entry that ends before it starts (a damaged
    /// table read from disk, which `Gpt::validate` then rejects).
    pub fn sectors(&self) -> u64 {
        (self.last_lba.saturating_add(1)).saturating_sub(self.first_lba)
    }
}

/// A whole partition table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Gpt {
    pub disk_guid: Uuid,
    pub sector_size: u32,
    /// Sectors on the disk.
    pub total_sectors: u64,
    pub partitions: Vec<GptPartition>,
}

/// Sectors the 128-entry array takes.
pub fn entry_sectors(sector_size: u32) -> u64 {
    ENTRIES_BYTES.div_ceil(sector_size as u64)
}

impl Gpt {
    pub fn first_usable_lba(&self) -> u64 {
        2 + entry_sectors(self.sector_size)
    }

    pub fn last_usable_lba(&self) -> u64 {
        self.total_sectors - 2 - entry_sectors(self.sector_size)
    }

    /// The entry number of each partition, in `partitions` order: its own, or for a
    /// new one the lowest entry no other holds, handed out in order.
    pub fn numbers(&self) -> Result<Vec<u32>, GptError> {
        let mut taken = [false; ENTRIES as usize + 1];
        for p in &self.partitions {
            if let Some(n) = p.number
                && (n == 0 || n > ENTRIES || std::mem::replace(&mut taken[n as usize], true))
            {
                return Err(GptError::Corrupt(format!(
                    "entry number {n} of `{}` is outside 1..={ENTRIES} or used twice",
                    p.label
                )));
            }
        }
        let mut free = (1..=ENTRIES).filter(|&n| !taken[n as usize]);
        self.partitions
            .iter()
            .map(|p| match p.number {
                Some(n) => Ok(n),
                None => free
                    .next()
                    .ok_or_else(|| GptError::Corrupt(format!("no free entry for `{}`", p.label))),
            })
            .collect()
    }

    /// A number for a new usr slot partition: the entry after the last one in use.
    /// Slots pair the n-th usr, usr-verity and usr-verity-sig partitions in entry
    /// order, so a new slot must not take a hole in front of an older slot's entries.
    /// `None` (the lowest free entry) when the table is full up to its end.
    pub fn number_after_last(&self) -> Option<u32> {
        let last = self.numbers().ok()?.into_iter().max().unwrap_or(0);
        (last < ENTRIES).then_some(last + 1)
    }

    /// The entry number partition `i` has (or gets, when written); `i + 1` when the
    /// table is too broken to say.
    pub fn number(&self, i: usize) -> u32 {
        self.numbers()
            .ok()
            .and_then(|n| n.get(i).copied())
            .unwrap_or(i as u32 + 1)
    }

    /// Checks the table for overlaps and bounds, and returns it unchanged.
    pub fn validate(&self) -> Result<(), GptError> {
        if self.sector_size != 512 && self.sector_size != 4096 {
            return Err(GptError::SectorSize(self.sector_size));
        }
        if self.partitions.len() > ENTRIES as usize {
            return Err(GptError::Corrupt(format!(
                "{} partitions",
                self.partitions.len()
            )));
        }
        let numbers = self.numbers()?;
        let bad = |index: usize, p: &GptPartition, why: String| GptError::BadPartition {
            index: numbers[index] as usize,
            label: p.label.clone(),
            why,
        };
        for (i, p) in self.partitions.iter().enumerate() {
            if p.first_lba > p.last_lba {
                return Err(bad(i, p, "ends before it starts".into()));
            }
            if p.first_lba < self.first_usable_lba() || p.last_lba > self.last_usable_lba() {
                return Err(bad(
                    i,
                    p,
                    format!(
                        "lies outside the usable sectors {}..={}",
                        self.first_usable_lba(),
                        self.last_usable_lba()
                    ),
                ));
            }
            if p.label.encode_utf16().count() > 36 {
                return Err(GptError::LabelTooLong(p.label.clone()));
            }
            for (j, q) in self.partitions.iter().enumerate().skip(i + 1) {
                if p.first_lba <= q.last_lba && q.first_lba <= p.last_lba {
                    return Err(bad(i, p, format!("overlaps partition {}", numbers[j])));
                }
            }
        }
        Ok(())
    }

    /// The byte ranges to write: `(offset, bytes)`.
    pub fn encode(&self) -> Result<Vec<(u64, Vec<u8>)>, GptError> {
        self.validate()?;
        let ss = self.sector_size as u64;
        let mut entries = vec![0u8; ENTRIES_BYTES as usize];
        for (p, n) in self.partitions.iter().zip(self.numbers()?) {
            let i = n as usize - 1;
            let e = &mut entries[i * ENTRY_SIZE as usize..(i + 1) * ENTRY_SIZE as usize];
            e[0..16].copy_from_slice(&p.kind.type_uuid().to_bytes_le());
            e[16..32].copy_from_slice(&p.uuid.to_bytes_le());
            e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
            e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
            e[48..56].copy_from_slice(&p.attributes.to_le_bytes());
            for (k, unit) in p.label.encode_utf16().enumerate() {
                e[56 + 2 * k..58 + 2 * k].copy_from_slice(&unit.to_le_bytes());
            }
        }
        let entries_crc = crc32fast::hash(&entries);
        let last = self.total_sectors - 1;
        let backup_entries_lba = last - entry_sectors(self.sector_size);
        let header = |current: u64, backup: u64, entries_lba: u64| {
            let mut h = vec![0u8; ss as usize];
            h[0..8].copy_from_slice(SIGNATURE);
            h[8..12].copy_from_slice(&REVISION.to_le_bytes());
            h[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
            h[24..32].copy_from_slice(&current.to_le_bytes());
            h[32..40].copy_from_slice(&backup.to_le_bytes());
            h[40..48].copy_from_slice(&self.first_usable_lba().to_le_bytes());
            h[48..56].copy_from_slice(&self.last_usable_lba().to_le_bytes());
            h[56..72].copy_from_slice(&self.disk_guid.to_bytes_le());
            h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
            h[80..84].copy_from_slice(&ENTRIES.to_le_bytes());
            h[84..88].copy_from_slice(&ENTRY_SIZE.to_le_bytes());
            h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
            let crc = crc32fast::hash(&h[..HEADER_SIZE as usize]);
            h[16..20].copy_from_slice(&crc.to_le_bytes());
            h
        };
        Ok(vec![
            (0, self.protective_mbr()),
            (ss, header(1, last, 2)),
            (2 * ss, entries.clone()),
            (backup_entries_lba * ss, entries),
            (last * ss, header(last, 1, backup_entries_lba)),
        ])
    }

    fn protective_mbr(&self) -> Vec<u8> {
        let mut m = vec![0u8; self.sector_size as usize];
        let e = &mut m[446..462];
        e[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
        e[4] = 0xee;
        e[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
        e[8..12].copy_from_slice(&1u32.to_le_bytes());
        let size = (self.total_sectors - 1).min(u32::MAX as u64) as u32;
        e[12..16].copy_from_slice(&size.to_le_bytes());
        m[510] = 0x55;
        m[511] = 0xaa;
        m
    }

    /// Reads the primary table from a disk image (`read_at(offset, buf)`), checking
    /// both CRCs. The sector size is detected by where the header is found.
    pub fn decode(
        mut read_at: impl FnMut(u64, &mut [u8]) -> std::io::Result<()>,
    ) -> Result<Gpt, GptError> {
        let mut last = GptError::NotFound("no `EFI PART` header at LBA 1".into());
        for ss in [512u64, 4096] {
            match Gpt::decode_header(&mut read_at, ss, 1) {
                Ok(g) => return Ok(g),
                Err(GptError::NotFound(_)) => {}
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Like [`Gpt::decode`], but falls back to the backup header at the end of a disk
    /// of `disk_size` bytes when the primary is damaged, as firmware and libfdisk do.
    pub fn decode_with_backup(
        mut read_at: impl FnMut(u64, &mut [u8]) -> std::io::Result<()>,
        disk_size: u64,
    ) -> Result<Gpt, GptError> {
        match Gpt::decode(&mut read_at) {
            Ok(g) => Ok(g),
            Err(primary) => {
                for ss in [512u64, 4096] {
                    if !disk_size.is_multiple_of(ss) || disk_size < 2 * ss {
                        continue;
                    }
                    if let Ok(g) = Gpt::decode_header(&mut read_at, ss, disk_size / ss - 1) {
                        return Ok(g);
                    }
                }
                Err(primary)
            }
        }
    }

    fn decode_header(
        read_at: &mut impl FnMut(u64, &mut [u8]) -> std::io::Result<()>,
        ss: u64,
        lba: u64,
    ) -> Result<Gpt, GptError> {
        let mut h = vec![0u8; 512];
        if read_at(lba * ss, &mut h).is_err() || &h[0..8] != SIGNATURE {
            return Err(GptError::NotFound(format!(
                "no `EFI PART` header at LBA {lba}"
            )));
        }
        let u32_at =
            |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or_default());
        let u64_at =
            |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
        let hsize = u32_at(&h, 12) as usize;
        if !(92..=512).contains(&hsize) {
            return Err(GptError::Corrupt(format!("header size {hsize}")));
        }
        let want = u32_at(&h, 16);
        let mut copy = h[..hsize].to_vec();
        copy[16..20].fill(0);
        if crc32fast::hash(&copy) != want {
            return Err(GptError::Corrupt("header CRC mismatch".into()));
        }
        let current = u64_at(&h, 24);
        let other = u64_at(&h, 32);
        let entries_lba = u64_at(&h, 72);
        let count = u32_at(&h, 80) as usize;
        let esize = u32_at(&h, 84) as usize;
        if !(128..=4096).contains(&esize) || count > 1024 {
            return Err(GptError::Corrupt(format!(
                "{count} entries of {esize} bytes"
            )));
        }
        if entries_lba >= u64::MAX / ss {
            return Err(GptError::Corrupt(format!("entries at LBA {entries_lba}")));
        }
        let mut entries = vec![0u8; count * esize];
        read_at(entries_lba * ss, &mut entries)
            .map_err(|e| GptError::Corrupt(format!("reading entries: {e}")))?;
        if crc32fast::hash(&entries) != u32_at(&h, 88) {
            return Err(GptError::Corrupt("entries CRC mismatch".into()));
        }
        let guid = |b: &[u8]| Uuid::from_bytes_le(b[..16].try_into().unwrap_or_default());
        let mut partitions = Vec::new();
        for (n, e) in entries.chunks(esize).enumerate() {
            let kind = guid(&e[0..16]);
            if kind.is_nil() {
                continue;
            }
            let units: Vec<u16> = e[56..128]
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&u| u != 0)
                .collect();
            partitions.push(GptPartition {
                kind: PartitionType::from_type_uuid(kind),
                uuid: guid(&e[16..32]),
                label: String::from_utf16_lossy(&units),
                first_lba: u64_at(e, 32),
                last_lba: u64_at(e, 40),
                attributes: u64_at(e, 48),
                number: Some(n as u32 + 1),
            });
        }
        // The last LBA is the backup header's: `other` for the primary, `current`
        // for the backup.
        let last = if lba == 1 { other } else { current };
        // Everything later multiplies LBAs by the sector size and subtracts the
        // table's own sectors: refuse values where that would overflow.
        if last < 2 * (entry_sectors(ss as u32) + 1) || last >= u64::MAX / ss {
            return Err(GptError::Corrupt(format!(
                "backup header LBA {last} cannot end a disk"
            )));
        }
        Ok(Gpt {
            disk_guid: guid(&h[56..72]),
            sector_size: ss as u32,
            total_sectors: last + 1,
            partitions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ss: u32) -> Gpt {
        let mib = 1 << 20;
        let per = |bytes: u64| bytes / ss as u64;
        Gpt {
            disk_guid: Uuid::from_u128(0x1234),
            sector_size: ss,
            total_sectors: per(64 * mib),
            partitions: vec![
                GptPartition {
                    kind: PartitionType::Esp,
                    uuid: Uuid::from_u128(1),
                    label: "ESP".into(),
                    first_lba: per(mib),
                    last_lba: per(33 * mib) - 1,
                    attributes: 0,
                    number: Some(1),
                },
                GptPartition {
                    kind: PartitionType::Usr,
                    uuid: Uuid::from_u128(2),
                    label: "tessera_1.0".into(),
                    first_lba: per(33 * mib),
                    last_lba: per(63 * mib) - 1,
                    attributes: ATTR_READ_ONLY,
                    number: Some(2),
                },
            ],
        }
    }

    /// The bytes of a disk holding only `gpt`.
    fn image(gpt: &Gpt) -> Vec<u8> {
        let mut disk = vec![0u8; (gpt.total_sectors * gpt.sector_size as u64) as usize];
        for (off, bytes) in gpt.encode().unwrap() {
            disk[off as usize..off as usize + bytes.len()].copy_from_slice(&bytes);
        }
        disk
    }

    fn reader(disk: &[u8]) -> impl FnMut(u64, &mut [u8]) -> std::io::Result<()> + '_ {
        |off, buf| {
            buf.copy_from_slice(&disk[off as usize..off as usize + buf.len()]);
            Ok(())
        }
    }

    /// `gpt` written to a disk and read back.
    fn written(gpt: &Gpt) -> Gpt {
        Gpt::decode(reader(&image(gpt))).unwrap()
    }

    fn round_trip(ss: u32) {
        let gpt = sample(ss);
        assert_eq!(written(&gpt), gpt);
    }

    /// Deleting a partition frees its entry and renumbers nothing; a new partition
    /// takes the lowest free entry, as libfdisk and repart number them.
    #[test]
    fn entries_keep_their_numbers_and_new_ones_fill_the_lowest_hole() {
        let mut gpt = sample(512);
        let mut third = gpt.partitions[1].clone();
        gpt.partitions[1].last_lba = 40 * 2048 - 1;
        third.first_lba = 40 * 2048;
        third.uuid = Uuid::from_u128(3);
        third.number = None;
        gpt.partitions.push(third);
        let gpt = written(&gpt);
        assert_eq!(gpt.numbers().unwrap(), [1, 2, 3]);

        let mut holed = gpt.clone();
        holed.partitions.remove(1);
        let holed = written(&holed);
        assert_eq!(holed.numbers().unwrap(), [1, 3]);
        assert_eq!(holed.partitions[1].uuid, Uuid::from_u128(3));

        let mut refilled = holed.clone();
        let mut new = gpt.partitions[1].clone();
        new.number = None;
        new.uuid = Uuid::from_u128(4);
        refilled.partitions.push(new.clone());
        refilled.partitions.push(GptPartition {
            first_lba: 63 * 2048,
            last_lba: 63 * 2048 + 7,
            uuid: Uuid::from_u128(5),
            ..new
        });
        assert_eq!(refilled.number(2), 2);
        assert_eq!(refilled.number_after_last(), Some(5));
        assert_eq!(written(&refilled).numbers().unwrap(), [1, 2, 3, 4]);

        let mut twice = gpt.clone();
        twice.partitions[2].number = Some(1);
        assert!(twice.encode().is_err());
        twice.partitions[2].number = Some(ENTRIES + 1);
        assert!(twice.encode().is_err());
    }

    #[test]
    fn a_damaged_primary_falls_back_to_the_backup() {
        let gpt = sample(512);
        let mut disk = image(&gpt);
        disk[1024 + 5] ^= 0xff; // primary entries
        assert!(Gpt::decode(reader(&disk)).is_err());
        let back = Gpt::decode_with_backup(reader(&disk), disk.len() as u64).unwrap();
        assert_eq!(back, gpt);
    }

    #[test]
    fn impossible_lbas_in_a_header_are_corrupt_not_a_panic() {
        let gpt = sample(512);
        let disk = image(&gpt);
        // The primary's backup-LBA field, then its CRC recomputed so only the value
        // is wrong.
        for bad in [u64::MAX, 3] {
            let mut d = disk.clone();
            d[512 + 32..512 + 40].copy_from_slice(&bad.to_le_bytes());
            d[512 + 16..512 + 20].fill(0);
            let crc = crc32fast::hash(&d[512..512 + 92]);
            d[512 + 16..512 + 20].copy_from_slice(&crc.to_le_bytes());
            let r = Gpt::decode(|off, buf| {
                let end = (off as usize).saturating_add(buf.len());
                buf.copy_from_slice(
                    d.get(off as usize..end)
                        .ok_or(std::io::ErrorKind::UnexpectedEof)?,
                );
                Ok(())
            });
            assert!(matches!(r, Err(GptError::Corrupt(_))), "{bad}: {r:?}");
        }
        let p = GptPartition {
            first_lba: 10,
            last_lba: 5,
            ..gpt.partitions[0].clone()
        };
        assert_eq!(p.sectors(), 0);
    }

    #[test]
    fn round_trips_with_both_sector_sizes() {
        round_trip(512);
        round_trip(4096);
    }

    #[test]
    fn overlaps_and_bounds_are_rejected() {
        let mut g = sample(512);
        g.partitions[1].first_lba = g.partitions[0].last_lba;
        assert!(matches!(
            g.validate(),
            Err(GptError::BadPartition { index: 1, .. })
        ));
        let mut g = sample(512);
        g.partitions[1].last_lba = g.total_sectors - 1;
        assert!(g.validate().is_err());
        let mut g = sample(512);
        g.partitions[0].label = "x".repeat(37);
        assert!(matches!(g.validate(), Err(GptError::LabelTooLong(_))));
    }

    #[test]
    fn usable_range_matches_the_spec() {
        assert_eq!(sample(512).first_usable_lba(), 34);
        assert_eq!(sample(4096).first_usable_lba(), 6);
        let g = sample(512);
        assert_eq!(g.last_usable_lba(), g.total_sectors - 34);
    }
}
