//! The 512-byte superblock `veritysetup format` writes at the start of the hash
//! device (cryptsetup's `struct verity_sb`, little-endian, packed).

use super::VerityError;

pub const SIGNATURE: &[u8; 8] = b"verity\0\0";
pub const SIZE: usize = 512;
const MAX_SALT: usize = 256;

/// The on-disk superblock, format version 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VeritySuperblock {
    /// 1 = normal (salt before the data in each hash), 0 = Chrome OS (salt after).
    pub hash_type: u32,
    pub uuid: [u8; 16],
    /// e.g. `sha256`.
    pub algorithm: String,
    pub data_block_size: u32,
    pub hash_block_size: u32,
    pub data_blocks: u64,
    pub salt: Vec<u8>,
}

impl VeritySuperblock {
    pub fn encode(&self) -> Result<[u8; SIZE], VerityError> {
        if self.salt.len() > MAX_SALT {
            return Err(VerityError::Invalid(format!(
                "salt is {} bytes; at most {MAX_SALT}",
                self.salt.len()
            )));
        }
        if self.algorithm.len() >= 32 {
            return Err(VerityError::Invalid("algorithm name too long".into()));
        }
        let mut b = [0u8; SIZE];
        b[0..8].copy_from_slice(SIGNATURE);
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        b[12..16].copy_from_slice(&self.hash_type.to_le_bytes());
        b[16..32].copy_from_slice(&self.uuid);
        b[32..32 + self.algorithm.len()].copy_from_slice(self.algorithm.as_bytes());
        b[64..68].copy_from_slice(&self.data_block_size.to_le_bytes());
        b[68..72].copy_from_slice(&self.hash_block_size.to_le_bytes());
        b[72..80].copy_from_slice(&self.data_blocks.to_le_bytes());
        b[80..82].copy_from_slice(&(self.salt.len() as u16).to_le_bytes());
        // 82..88 padding
        b[88..88 + self.salt.len()].copy_from_slice(&self.salt);
        Ok(b)
    }

    /// The parameters to rebuild this tree with; only sha256 with hash type 1 (what
    /// osimage and systemd write) is supported.
    pub fn params(&self) -> Result<super::VerityParams, VerityError> {
        if self.algorithm != "sha256" || self.hash_type != 1 {
            return Err(VerityError::Invalid(format!(
                "unsupported hash {} type {}",
                self.algorithm, self.hash_type
            )));
        }
        Ok(super::VerityParams {
            data_block_size: self.data_block_size,
            hash_block_size: self.hash_block_size,
            salt: self.salt.clone(),
            uuid: self.uuid,
        })
    }

    /// Bytes of data the tree covers.
    pub fn data_len(&self) -> u64 {
        self.data_blocks * self.data_block_size as u64
    }

    pub fn decode(b: &[u8]) -> Result<VeritySuperblock, VerityError> {
        if b.len() < SIZE || &b[0..8] != SIGNATURE {
            return Err(VerityError::Invalid(
                "no verity superblock signature".into(),
            ));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let version = u32_at(8);
        if version != 1 {
            return Err(VerityError::Invalid(format!(
                "superblock version {version}"
            )));
        }
        let alg_end = b[32..64].iter().position(|&c| c == 0).unwrap_or(32);
        let algorithm = std::str::from_utf8(&b[32..32 + alg_end])
            .map_err(|_| VerityError::Invalid("algorithm is not UTF-8".into()))?
            .to_owned();
        let salt_len = u16::from_le_bytes([b[80], b[81]]) as usize;
        if salt_len > MAX_SALT {
            return Err(VerityError::Invalid(format!("salt size {salt_len}")));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[16..32]);
        let mut blocks = [0u8; 8];
        blocks.copy_from_slice(&b[72..80]);
        Ok(VeritySuperblock {
            hash_type: u32_at(12),
            uuid,
            algorithm,
            data_block_size: u32_at(64),
            hash_block_size: u32_at(68),
            data_blocks: u64::from_le_bytes(blocks),
            salt: b[88..88 + salt_len].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let sb = VeritySuperblock {
            hash_type: 1,
            uuid: [7; 16],
            algorithm: "sha256".into(),
            data_block_size: 4096,
            hash_block_size: 4096,
            data_blocks: 12345,
            salt: vec![0xab; 32],
        };
        let bytes = sb.encode().unwrap();
        assert_eq!(&bytes[..8], b"verity\0\0");
        assert_eq!(VeritySuperblock::decode(&bytes).unwrap(), sb);
        assert!(VeritySuperblock::decode(&[0u8; 512]).is_err());
    }
}
