//! Our dm-verity trees against cryptsetup's `veritysetup`, the format's reference.

use std::fs::File;
use std::path::Path;
use std::process::Command;

use osimage::verity::{self, VerityParams};

fn veritysetup(args: &[&str]) -> std::process::Output {
    let bin = ["/usr/sbin/veritysetup", "/sbin/veritysetup"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("veritysetup is not installed (cargo xtask deps installs cryptsetup-bin)");
    Command::new(bin).args(args).output().unwrap()
}

/// Deterministic pseudo-random data, so a failure reproduces.
fn data_file(path: &Path, blocks: usize, block: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..blocks * block)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, bytes).unwrap();
}

fn root_hash_from(stdout: &[u8]) -> String {
    String::from_utf8_lossy(stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .map(|h| h.trim().to_owned())
        .expect("veritysetup printed no root hash")
}

fn compare(blocks: usize, data_block: u32, hash_block: u32) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let theirs = dir.path().join("hash.veritysetup");
    let ours = dir.path().join("hash.osimage");
    data_file(&data, blocks, data_block as usize);
    let salt = verity::derive_salt(b"test seed", "usr");
    let uuid = *uuid::Uuid::parse_str("0f6c1d6e-7f36-4c0b-9a57-7a2f6c8a9d01")
        .unwrap()
        .as_bytes();

    let out = veritysetup(&[
        "format",
        data.to_str().unwrap(),
        theirs.to_str().unwrap(),
        "--salt",
        &hex::encode(&salt),
        "--uuid",
        "0f6c1d6e-7f36-4c0b-9a57-7a2f6c8a9d01",
        "--data-block-size",
        &data_block.to_string(),
        "--hash-block-size",
        &hash_block.to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let their_root = root_hash_from(&out.stdout);

    let params = VerityParams {
        data_block_size: data_block,
        hash_block_size: hash_block,
        salt,
        uuid,
    };
    let f = File::open(&data).unwrap();
    let size = f.metadata().unwrap().len();
    let tree = verity::build(&f, 0, size, &params, |_| {}).unwrap();
    std::fs::write(&ours, &tree.hash_device).unwrap();

    assert_eq!(
        hex::encode(tree.root_hash),
        their_root,
        "root hash, {blocks} blocks"
    );
    let theirs_bytes = std::fs::read(&theirs).unwrap();
    assert_eq!(
        theirs_bytes.len(),
        tree.hash_device.len(),
        "hash device size, {blocks} blocks"
    );
    assert!(
        theirs_bytes == tree.hash_device,
        "hash device bytes differ, {blocks} blocks"
    );

    // veritysetup accepts our tree, and our verifier accepts theirs.
    let out = veritysetup(&[
        "verify",
        data.to_str().unwrap(),
        ours.to_str().unwrap(),
        &their_root,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sb = verity::verify(&f, 0, &File::open(&theirs).unwrap(), 0, &tree.root_hash).unwrap();
    assert_eq!(sb.data_blocks, blocks as u64);
}

#[test]
fn byte_identical_to_veritysetup_across_tree_shapes() {
    // 1 block (no tree), one full leaf block, just over, and three levels.
    for blocks in [1, 128, 129, 16_385] {
        compare(blocks, 4096, 4096);
    }
}

#[test]
fn byte_identical_with_other_block_sizes() {
    compare(1000, 512, 4096);
    compare(1000, 4096, 1024);
}

#[test]
fn corrupted_data_is_rejected_by_both() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hash = dir.path().join("hash");
    data_file(&data, 300, 4096);
    let params = VerityParams::new(verity::derive_salt(b"x", "usr"), [3; 16]);
    let f = File::open(&data).unwrap();
    let tree = verity::build(&f, 0, 300 * 4096, &params, |_| {}).unwrap();
    std::fs::write(&hash, &tree.hash_device).unwrap();

    let mut bytes = std::fs::read(&data).unwrap();
    bytes[200 * 4096 + 17] ^= 1;
    std::fs::write(&data, bytes).unwrap();
    let root = hex::encode(tree.root_hash);
    let out = veritysetup(&[
        "verify",
        data.to_str().unwrap(),
        hash.to_str().unwrap(),
        &root,
    ]);
    assert!(
        !out.status.success(),
        "veritysetup must reject a flipped bit"
    );
    let f = File::open(&data).unwrap();
    let err = verity::verify(&f, 0, &File::open(&hash).unwrap(), 0, &tree.root_hash);
    assert!(
        matches!(err, Err(verity::VerityError::Mismatch(_))),
        "{err:?}"
    );
}
