//! Installed-looking disks for the firstboot tests: a GPT made by sfdisk holding an
//! ESP and an A usr slot with random contents, and repart.d definitions for the rest.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use osimage::disk::{Disk, FileDisk, read_gpt};
use osimage::gpt::{GptPartition, PartitionType};
use sha2::{Digest, Sha256};

pub const MIB: u64 = 1 << 20;

/// `disk_mib` of disk with, in order: ESP 4 MiB, usr 4 MiB, usr-verity 1 MiB,
/// usr-verity-sig 1 MiB (labelled `tessera_1.0`), written by sfdisk, then filled with
/// random bytes so that "untouched" can be checked byte for byte.
pub fn installed_disk(dir: &Path, disk_mib: u64) -> PathBuf {
    let img = dir.join("disk.img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(disk_mib * MIB).unwrap();
    drop(f);
    let script = "label: gpt\n\
        size=4MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP\n\
        size=4MiB, type=8484680C-9521-48C6-9C11-B0720656F69E, name=tessera_1.0\n\
        size=1MiB, type=77FF5F63-E7B6-4633-ACF4-1565B864C0E6, name=tessera_1.0\n\
        size=1MiB, type=E7BB33FB-06CF-4E81-8273-E543B413E2E2, name=tessera_1.0\n";
    let script_file = dir.join("sfdisk.script");
    std::fs::write(&script_file, script).unwrap();
    let out = Command::new("sfdisk")
        .arg("--quiet")
        .arg(&img)
        .stdin(std::fs::File::open(&script_file).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sfdisk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut disk = FileDisk::open(&img).unwrap();
    let gpt = read_gpt(&disk).unwrap();
    for p in &gpt.partitions {
        let mut bytes = vec![0u8; (p.sectors() * 512) as usize];
        for (i, chunk) in bytes.chunks_mut(32).enumerate() {
            let h = Sha256::digest(format!("{}-{i}", p.label).as_bytes());
            chunk.copy_from_slice(&h[..chunk.len()]);
        }
        disk.write_at(p.first_lba * 512, &bytes).unwrap();
    }
    img
}

/// repart.d files: the installed four, root (grows, FactoryReset), home (fixed, kept
/// by a reset) and swap (fixed, FactoryReset), all three encrypted with the TPM2.
pub fn definitions(dir: &Path, encrypt: &str) -> PathBuf {
    let d = dir.join("repart.d");
    std::fs::create_dir_all(&d).unwrap();
    let files = [
        ("00-esp.conf", "Type=esp\nSizeMinBytes=4M\n".to_string()),
        (
            "10-usr.conf",
            "Type=usr\nVerity=data\nVerityMatchKey=usr\nFormat=erofs\n".into(),
        ),
        (
            "20-usr-verity.conf",
            "Type=usr-verity\nVerity=hash\nVerityMatchKey=usr\n".into(),
        ),
        (
            "30-usr-verity-sig.conf",
            "Type=usr-verity-sig\nVerity=signature\nVerityMatchKey=usr\n".into(),
        ),
        (
            "50-root.conf",
            format!(
                "Type=root\nFormat=btrfs\nEncrypt={encrypt}\nFactoryReset=yes\nSizeMinBytes=30M\n"
            ),
        ),
        (
            "60-home.conf",
            format!("Type=home\nEncrypt={encrypt}\nSizeMinBytes=27M\nSizeMaxBytes=27M\n"),
        ),
        (
            "70-swap.conf",
            format!(
                "Type=swap\nFormat=swap\nEncrypt={encrypt}\nFactoryReset=yes\nSizeMinBytes=26M\nSizeMaxBytes=26M\n"
            ),
        ),
    ];
    for (name, body) in files {
        std::fs::write(d.join(name), format!("[Partition]\n{body}")).unwrap();
    }
    d
}

pub fn table(disk: &dyn Disk) -> Vec<GptPartition> {
    read_gpt(disk).unwrap().partitions
}

pub fn find(disk: &dyn Disk, kind: PartitionType) -> GptPartition {
    table(disk)
        .into_iter()
        .find(|p| p.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} partition"))
}

pub fn read(disk: &dyn Disk, p: &GptPartition) -> Vec<u8> {
    let mut b = vec![0u8; (p.sectors() * 512) as usize];
    disk.read_at(p.first_lba * 512, &mut b).unwrap();
    b
}

/// A partition's bytes as a file of its own, for cryptsetup and libcryptsetup (which
/// take a device, not a range of one).
pub fn extract(disk: &dyn Disk, p: &GptPartition, to: &Path) -> PathBuf {
    std::fs::write(to, read(disk, p)).unwrap();
    to.to_owned()
}

pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
