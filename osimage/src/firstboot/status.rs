//! What `osimage status` says about a disk: its usr slots, and how each encrypted
//! partition can be opened (which records the weaker no-TPM mode where firstboot
//! had to use it: the header's tokens are the record, so it cannot go stale).

use serde::Serialize;

use crate::disk::{Disk, read_gpt};
use crate::gpt::PartitionType;
use crate::luks::header::{Luks2Header, Protection, has_magic};

/// One partition as status shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionStatus {
    pub number: usize,
    #[serde(rename = "type")]
    pub kind: PartitionType,
    pub label: String,
    pub size: u64,
    /// For LUKS2 partitions: how they open.
    pub protection: Option<Protection>,
    pub luks_uuid: Option<String>,
    /// A LUKS2 partition whose header cannot be read.
    pub damaged: Option<String>,
    /// An authenticated LUKS2 volume's integrity algorithm (Integrity=inline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskStatus {
    pub partitions: Vec<PartitionStatus>,
    /// The weakest protection of any encrypted partition.
    pub encryption: Option<Protection>,
}

/// Reads the table and every partition's first bytes.
pub fn disk_status(disk: &dyn Disk) -> std::io::Result<DiskStatus> {
    let gpt = read_gpt(disk).map_err(|e| std::io::Error::other(e.to_string()))?;
    // Offsets below come from the table: only a consistent one is read further.
    gpt.validate()
        .map_err(|e| std::io::Error::other(format!("inconsistent partition table: {e}")))?;
    let ss = gpt.sector_size as u64;
    let mut partitions = Vec::new();
    for (i, p) in gpt.partitions.iter().enumerate() {
        let size = p.sectors() * ss;
        let area = super::header_area(disk, p, ss)?;
        let (protection, luks_uuid, damaged, integrity) = if has_magic(&area) {
            match Luks2Header::parse(&area) {
                Ok(h) => (
                    Some(h.protection()),
                    Some(h.uuid.clone()),
                    None,
                    h.integrity,
                ),
                Err(e) => (None, None, Some(e.to_string()), None),
            }
        } else {
            (None, None, None, None)
        };
        partitions.push(PartitionStatus {
            number: gpt.number(i) as usize,
            kind: p.kind,
            label: p.label.clone(),
            size,
            protection,
            luks_uuid,
            damaged,
            integrity,
        });
    }
    let rank = |p: Protection| match p {
        Protection::Tpm2AndRecoveryKey | Protection::Tpm2 => 2,
        Protection::RecoveryKeyOnly => 1,
        Protection::Passphrase => 0,
    };
    let encryption = partitions
        .iter()
        .filter_map(|p| p.protection)
        .min_by_key(|&p| rank(p));
    Ok(DiskStatus {
        partitions,
        encryption,
    })
}
