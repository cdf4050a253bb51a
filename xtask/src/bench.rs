//! `cargo xtask bench osimage`: osimage against its peers, in the same run, as ratios.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

pub fn run(what: &str, size_mib: u64, runs: u32) -> anyhow::Result<()> {
    match what {
        "osimage" => osimage(size_mib, runs),
        other => bail!("unknown benchmark `{other}` (known: osimage)"),
    }
}

fn osimage(size_mib: u64, runs: u32) -> anyhow::Result<()> {
    crate::deps::ensure_groups(&["rig"], false)?;
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--release", "-p", "osimage"])
        .status()?;
    ensure!(status.success(), "building osimage failed");
    let osimage = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/osimage");

    let dir = tempfile::Builder::new()
        .prefix("tessera-bench-")
        .tempdir()?;
    let data = dir.path().join("data");
    write_data(&data, size_mib << 20)?;
    let salt = "5e1f0c8a3b2d4e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";
    let uuid = "0f6c1d6e-7f36-4c0b-9a57-7a2f6c8a9d01";
    let theirs = dir.path().join("hash.veritysetup");
    let ours = dir.path().join("hash.osimage");
    let args = |hash: &Path| {
        vec![
            data.display().to_string(),
            hash.display().to_string(),
            "--salt".into(),
            salt.into(),
            "--uuid".into(),
            uuid.into(),
        ]
    };

    println!("bench: dm-verity format of {size_mib} MiB, best of {runs} (data in page cache)");
    // Warm the page cache so both read the data from memory.
    time(
        Command::new("cat")
            .arg(&data)
            .stdout(std::process::Stdio::null()),
    )?;
    let mut t_theirs = Duration::MAX;
    let mut t_ours = Duration::MAX;
    for _ in 0..runs {
        let _ = std::fs::remove_file(&theirs);
        let _ = std::fs::remove_file(&ours);
        t_theirs = t_theirs.min(time(
            Command::new("veritysetup")
                .arg("format")
                .args(args(&theirs)),
        )?);
        t_ours = t_ours.min(time(
            Command::new(&osimage)
                .args(["--json", "verity", "format"])
                .args(args(&ours)),
        )?);
    }
    let same = std::fs::read(&theirs)? == std::fs::read(&ours)?;
    ensure!(
        same,
        "hash devices differ: the benchmark compares different work"
    );
    let gbps = |t: Duration| (size_mib << 20) as f64 / t.as_secs_f64() / 1e9;
    println!(
        "bench: veritysetup format  {:>7.3}s  {:.2} GB/s",
        t_theirs.as_secs_f64(),
        gbps(t_theirs)
    );
    println!(
        "bench: osimage verity      {:>7.3}s  {:.2} GB/s",
        t_ours.as_secs_f64(),
        gbps(t_ours)
    );
    println!(
        "bench: verity speed-up {:.2}x over veritysetup (target >= 2.9x); outputs byte-identical",
        t_theirs.as_secs_f64() / t_ours.as_secs_f64()
    );
    Ok(())
}

fn write_data(path: &Path, size: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..(size >> 20) {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&block)?;
    }
    f.flush()?;
    Ok(())
}

fn time(cmd: &mut Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let took = start.elapsed();
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}
