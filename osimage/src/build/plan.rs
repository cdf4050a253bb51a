//! Disk layout planning: pure arithmetic from partition sizes to offsets.

use serde::Serialize;
use uuid::Uuid;

use crate::gpt::{Gpt, GptPartition, PartitionType, entry_sectors};

/// Partitions start on 1 MiB boundaries, as fdisk, repart and most firmware expect.
pub const ALIGN: u64 = 1 << 20;
/// Partition sizes are multiples of 4 KiB (repart's grain).
pub const GRAIN: u64 = 4096;

/// A partition's needs before placement.
#[derive(Debug, Clone)]
pub struct PartitionNeeds {
    pub kind: PartitionType,
    pub label: String,
    pub uuid: Uuid,
    pub attributes: u64,
    /// Bytes of content to write.
    pub content: u64,
    pub min: Option<u64>,
    pub max: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedPartition {
    #[serde(rename = "type")]
    pub kind: PartitionType,
    pub label: String,
    pub uuid: Uuid,
    pub offset: u64,
    pub size: u64,
    pub attributes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskPlan {
    pub sector_size: u32,
    pub disk_size: u64,
    pub disk_guid: Uuid,
    pub partitions: Vec<PlannedPartition>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("{kind} partition `{label}` needs {needed} bytes but SizeMaxBytes is {max}")]
    TooBig {
        kind: PartitionType,
        label: String,
        needed: u64,
        max: u64,
    },
}

fn align(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Places partitions in order, each at the next 1 MiB boundary, sized to
/// `max(content, SizeMinBytes)` rounded up to 4 KiB and checked against SizeMaxBytes.
pub fn plan(
    sector_size: u32,
    disk_guid: Uuid,
    needs: &[PartitionNeeds],
) -> Result<DiskPlan, PlanError> {
    let mut offset = ALIGN;
    let mut partitions = Vec::with_capacity(needs.len());
    for n in needs {
        let size = align(
            n.content.max(n.min.unwrap_or(0)),
            GRAIN.max(sector_size as u64),
        );
        if let Some(max) = n.max
            && size > max
        {
            return Err(PlanError::TooBig {
                kind: n.kind,
                label: n.label.clone(),
                needed: size,
                max,
            });
        }
        partitions.push(PlannedPartition {
            kind: n.kind,
            label: n.label.clone(),
            uuid: n.uuid,
            offset,
            size,
            attributes: n.attributes,
        });
        offset = align(offset + size, ALIGN);
    }
    // The backup GPT (entries + header) needs well under 1 MiB at the end.
    let tail = (entry_sectors(sector_size) + 1) * sector_size as u64;
    let disk_size = align(offset + tail, ALIGN);
    Ok(DiskPlan {
        sector_size,
        disk_size,
        disk_guid,
        partitions,
    })
}

impl DiskPlan {
    pub fn gpt(&self) -> Gpt {
        let ss = self.sector_size as u64;
        Gpt {
            disk_guid: self.disk_guid,
            sector_size: self.sector_size,
            total_sectors: self.disk_size / ss,
            partitions: self
                .partitions
                .iter()
                .map(|p| GptPartition {
                    kind: p.kind,
                    uuid: p.uuid,
                    label: p.label.clone(),
                    first_lba: p.offset / ss,
                    last_lba: (p.offset + p.size) / ss - 1,
                    attributes: p.attributes,
                    number: None,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(
        kind: PartitionType,
        content: u64,
        min: Option<u64>,
        max: Option<u64>,
    ) -> PartitionNeeds {
        PartitionNeeds {
            kind,
            label: kind.to_string(),
            uuid: Uuid::nil(),
            attributes: 0,
            content,
            min,
            max,
        }
    }

    #[test]
    fn partitions_are_aligned_and_sized() {
        let p = plan(
            512,
            Uuid::nil(),
            &[
                need(PartitionType::Esp, 1000, Some(64 << 20), None),
                need(PartitionType::Usr, (10 << 20) + 1, None, None),
                need(PartitionType::UsrVerity, 90_000, None, None),
            ],
        )
        .unwrap();
        let offs: Vec<u64> = p.partitions.iter().map(|p| p.offset).collect();
        assert_eq!(offs, [1 << 20, 65 << 20, 76 << 20]);
        assert_eq!(p.partitions[1].size, (10 << 20) + 4096);
        assert_eq!(p.partitions[2].size, 90_112);
        assert_eq!(p.disk_size, 78 << 20);
        p.gpt().validate().unwrap();
        let p4k = plan(
            4096,
            Uuid::nil(),
            &[need(PartitionType::Usr, 1, None, None)],
        )
        .unwrap();
        p4k.gpt().validate().unwrap();
    }

    #[test]
    fn size_max_is_enforced() {
        let e = plan(
            512,
            Uuid::nil(),
            &[need(PartitionType::Usr, 5 << 20, None, Some(4 << 20))],
        )
        .unwrap_err();
        assert!(matches!(e, PlanError::TooBig { needed, .. } if needed == 5 << 20));
    }
}
