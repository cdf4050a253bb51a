//! Applying a 1 GiB usr slot from nginx on loopback with `osimage update`, against
//! the two-step peer (`curl | dd`, then `veritysetup verify`), and against raw write
//! speed, in one run. Run by `cargo xtask bench osimage`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use osimage::disk::{FileDisk, write_gpt};
use osimage::gpt::{ATTR_READ_ONLY, Gpt, GptPartition, PartitionType};
use osimage::sign::SigningIdentity;
use osimage::uki::UkiSpec;
use osimage::update::apply::{self, Options};
use osimage::update::catalog::Policy;
use osimage::update::manifest::Manifest;
use osimage::update::source::Source;
use osimage::verity::{self, VerityParams, sig::VeritySig};
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn main() {
    let size_mib: u64 = std::env::var("BENCH_SIZE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let art = tessera_rig::Artifacts::ensure().unwrap();
    let dir = tempfile::Builder::new()
        .prefix("tessera-bench-update-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    let publish = d.join("publish");
    std::fs::create_dir_all(&publish).unwrap();

    // The published version: 1 GiB of incompressible /usr data, its tree, signature and UKI.
    let usr_path = publish.join("bench_2.usr.erofs");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&usr_path).unwrap());
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..size_mib {
            for c in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                c.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&block).unwrap();
        }
    }
    let params = VerityParams::new(verity::derive_salt(b"bench", "usr"), [7; 16]);
    let usr = std::fs::File::open(&usr_path).unwrap();
    let tree = verity::build(&usr, 0, size_mib << 20, &params, |_| {}).unwrap();
    std::fs::write(publish.join("bench_2.usr-verity"), &tree.hash_device).unwrap();
    let id = SigningIdentity::generate("bench").unwrap();
    let cert = d.join("vendor.crt");
    std::fs::write(&cert, id.cert_pem().unwrap()).unwrap();
    std::fs::write(
        publish.join("bench_2.usr-verity-sig"),
        VeritySig::sign(&tree.root_hash, &id)
            .unwrap()
            .to_partition(),
    )
    .unwrap();
    let uki = UkiSpec {
        osrel: b"ID=bench\n".to_vec(),
        cmdline: format!("usrhash={}", hex::encode(tree.root_hash)),
        linux: vec![0; 4096],
        ..Default::default()
    }
    .build_from_file(&art.efi_stub)
    .unwrap();
    std::fs::write(publish.join("bench_2.efi"), &uki).unwrap();
    let mut manifest = Manifest::default();
    for e in std::fs::read_dir(&publish).unwrap() {
        let e = e.unwrap();
        manifest.files.insert(
            e.file_name().to_string_lossy().into_owned(),
            hex::encode(Sha256::digest(std::fs::read(e.path()).unwrap())),
        );
    }
    std::fs::write(publish.join("SHA256SUMS"), manifest.format()).unwrap();
    std::fs::write(
        publish.join("SHA256SUMS.p7s"),
        id.sign_pkcs7_detached(manifest.format().as_bytes())
            .unwrap(),
    )
    .unwrap();

    // The device: an ESP and one empty slot big enough.
    let disk_path = d.join("device.img");
    let ss = 512u64;
    let mib = 1u64 << 20;
    let layout = [
        (PartitionType::Esp, "ESP", 34 * mib),
        (PartitionType::Usr, "_empty", (size_mib + 8) * mib),
        (
            PartitionType::UsrVerity,
            "_empty",
            (size_mib / 64 + 8) * mib,
        ),
        (PartitionType::UsrVeritySig, "_empty", mib),
    ];
    let total: u64 = layout.iter().map(|l| l.2).sum::<u64>() + 8 * mib;
    std::fs::File::create(&disk_path)
        .unwrap()
        .set_len(total)
        .unwrap();
    let mut partitions = Vec::new();
    let mut at = mib / ss;
    for (i, (kind, label, bytes)) in layout.iter().enumerate() {
        partitions.push(GptPartition {
            kind: *kind,
            uuid: Uuid::from_u128(i as u128 + 1),
            label: (*label).into(),
            first_lba: at,
            last_lba: at + bytes / ss - 1,
            attributes: if i == 0 { 0 } else { ATTR_READ_ONLY },
            number: None,
        });
        at += bytes / ss + mib / ss;
    }
    let gpt = Gpt {
        disk_guid: Uuid::from_u128(99),
        sector_size: 512,
        total_sectors: total / ss,
        partitions,
    };
    let mut disk = FileDisk::open(&disk_path).unwrap();
    write_gpt(&mut disk, &gpt).unwrap();
    let esp = osimage::esp::build(34 * mib, 512, 1, "ESP", &[]).unwrap();
    use osimage::disk::Disk;
    disk.write_at(mib, &esp).unwrap();
    drop(disk);

    let nginx = tessera_rig::Nginx::serve(&publish).unwrap();
    let base = nginx.base_url();
    let vendor = osimage::sign::load_cert(&cert).unwrap();
    let opts = Options {
        name: "bench".into(),
        vendor_cert: vendor.clone(),
        verity_cert: vendor,
        booted: None,
        policy: Policy::default(),
        tries: 3,
        instances_max: 2,
    };
    let cat = |p: &Path| {
        let _ = Command::new("cat").arg(p).stdout(Stdio::null()).status();
    };
    cat(&usr_path);

    // Raw write speed: dd from /dev/zero, synced, as both tools sync at the end. The
    // faster of buffered and O_DIRECT writes is the device's raw speed; each timed
    // part starts with a `sync`, so no earlier part's writeback is charged to it.
    let raw = d.join("raw");
    let mut raw_times = Vec::new();
    for flag in ["conv=fsync", "oflag=direct"] {
        sync();
        let t = Instant::now();
        run(Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", raw.display()))
            .args([
                "bs=4M",
                &format!("count={}", size_mib / 4),
                flag,
                "conv=fsync",
                "status=none",
            ]));
        raw_times.push((flag, t.elapsed()));
        std::fs::remove_file(&raw).unwrap();
    }
    let t_raw = raw_times.iter().map(|r| r.1).min().unwrap();

    // osimage: one pass that writes and verifies.
    sync();
    let t = Instant::now();
    let mut disk = FileDisk::open(&disk_path).unwrap();
    let report = apply::apply(&mut disk, &Source::parse(&base), &opts).unwrap();
    let t_ours = t.elapsed();
    assert_eq!(report.activated.as_deref(), Some("bench_2+3.efi"));
    drop(disk);

    // The peer: download into files with curl | dd, then veritysetup verify.
    let peer_usr = d.join("peer.usr");
    let peer_hash = d.join("peer.hash");
    sync();
    let t = Instant::now();
    for (file, out) in [
        ("bench_2.usr-verity", &peer_hash),
        ("bench_2.usr.erofs", &peer_usr),
    ] {
        run(Command::new("sh").arg("-c").arg(format!(
            "curl -sf {base}/{file} | dd of={} bs=1M iflag=fullblock conv=fsync status=none",
            out.display()
        )));
    }
    run(Command::new("veritysetup")
        .arg("verify")
        .arg(&peer_usr)
        .arg(&peer_hash)
        .arg(hex::encode(tree.root_hash)));
    let t_peer = t.elapsed();

    // The floor a one-pass apply cannot beat: the file's sha256 the manifest demands is
    // one serial stream on one core, however many cores hash the verity leaves.
    let data = std::fs::read(&usr_path).unwrap();
    let t = Instant::now();
    let mut h = Sha256::new();
    for c in data.chunks(4 << 20) {
        h.update(c);
    }
    std::hint::black_box(h.finalize());
    let t_sha = t.elapsed();
    drop(data);

    let gbps = |t: Duration| (size_mib << 20) as f64 / t.as_secs_f64() / 1e9;
    println!("bench: apply of a {size_mib} MiB usr slot from nginx on loopback");
    for (flag, t) in &raw_times {
        println!(
            "bench: raw write (dd bs=4M {flag:<12}) {:>7.3}s  {:.2} GB/s",
            t.as_secs_f64(),
            gbps(*t)
        );
    }
    println!(
        "bench: sha256 of the file, one core      {:>7.3}s  {:.2} GB/s (floor for any one pass)",
        t_sha.as_secs_f64(),
        gbps(t_sha)
    );
    println!(
        "bench: curl|dd + veritysetup verify     {:>7.3}s  {:.2} GB/s",
        t_peer.as_secs_f64(),
        gbps(t_peer)
    );
    println!(
        "bench: osimage update (one pass)        {:>7.3}s  {:.2} GB/s",
        t_ours.as_secs_f64(),
        gbps(t_ours)
    );
    println!(
        "bench: osimage at {:.0}% of the faster raw write (target >= 90%), {:.2}x the two-step peer's speed (target > 1)",
        100.0 * t_raw.as_secs_f64() / t_ours.as_secs_f64(),
        t_peer.as_secs_f64() / t_ours.as_secs_f64()
    );
}

fn sync() {
    run(&mut Command::new("sync"));
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
