//! `cargo xtask bench osimage`: osimage against its peers, in the same run, as ratios.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

pub fn run(what: &str, size_mib: u64, runs: u32, frames: u32) -> anyhow::Result<()> {
    match what {
        "osimage" => osimage(size_mib, runs),
        "compositor" => crate::bench_compositor::run(frames, runs),
        other => bail!("unknown benchmark `{other}` (known: osimage, compositor)"),
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
    drop(dir);
    image_build(&osimage, runs)?;
    let status = Command::new(env!("CARGO"))
        .args([
            "bench",
            "--quiet",
            "-p",
            "osimage",
            "--bench",
            "update_apply",
        ])
        .env("BENCH_SIZE_MIB", size_mib.to_string())
        .status()?;
    ensure!(status.success(), "the update benchmark failed");
    let status = Command::new(env!("CARGO"))
        .args(["bench", "--quiet", "-p", "osimage", "--bench", "unlock"])
        .env("BENCH_RUNS", runs.max(10).to_string())
        .status()?;
    ensure!(status.success(), "the unlock benchmark failed");
    Ok(())
}

/// osimage build against systemd-repart on the same tree and equivalent definitions:
/// a 64 MiB vfat ESP and a 256 MiB squashfs /usr.
///
/// systemd-repart 252 cannot make erofs, and its verity step fails on this machine's
/// loop devices, so the shared ground is squashfs without verity. osimage still does
/// its own extra work (systemd-boot and a UKI on the ESP), which counts against it.
fn image_build(osimage: &Path, runs: u32) -> anyhow::Result<()> {
    let art = tessera_rig::Artifacts::ensure()?;
    let dir = tempfile::Builder::new()
        .prefix("tessera-bench-")
        .tempdir()?;
    let d = dir.path();
    let tree = d.join("tree");
    let status = Command::new("cp")
        .arg("-a")
        .arg("/usr/share/doc")
        .arg(&tree)
        .status()?;
    ensure!(status.success(), "copying /usr/share/doc");
    let size = Command::new("du").args(["-sb"]).arg(&tree).output()?;
    let size = String::from_utf8_lossy(&size.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned();

    let defs = d.join("repart.d");
    std::fs::create_dir_all(&defs)?;
    std::fs::write(
        defs.join("00-esp.conf"),
        "[Partition]\nType=esp\nFormat=vfat\nSizeMinBytes=64M\nSizeMaxBytes=64M\n",
    )?;
    std::fs::write(
        defs.join("10-usr.conf"),
        format!(
            "[Partition]\nType=usr\nFormat=squashfs\nCopyFiles={}:/\nSizeMinBytes=256M\nSizeMaxBytes=256M\n",
            tree.display()
        ),
    )?;
    std::fs::write(d.join("os-release"), "ID=tessera\n")?;
    std::fs::write(d.join("initrd"), "bench")?;
    let def = d.join("image.toml");
    std::fs::write(
        &def,
        format!(
            "[image]\nname = \"bench\"\nversion = \"1\"\nseed = \"bench\"\n\
             [usr]\ntree = \"tree\"\nallow-non-hermetic = true\n\
             [uki]\nstub = \"{}\"\nkernel = \"{}\"\ninitrd = [\"initrd\"]\nos-release = \"os-release\"\n\
             [boot]\nsystemd-boot = \"{}\"\n\
             [[partition]]\nType = \"esp\"\nSizeMinBytes = \"64M\"\nSizeMaxBytes = \"64M\"\n\
             [[partition]]\nType = \"usr\"\nFormat = \"squashfs\"\nSizeMinBytes = \"256M\"\nSizeMaxBytes = \"256M\"\n",
            art.efi_stub.display(),
            art.vmlinuz.display(),
            art.systemd_boot.display()
        ),
    )?;

    println!("bench: image build of a {size}-byte tree (/usr/share/doc), best of {runs}");
    let mut t_repart = Duration::MAX;
    let mut t_osimage = Duration::MAX;
    for _ in 0..runs {
        let _ = std::fs::remove_file(d.join("repart.img"));
        t_repart = t_repart.min(time(
            Command::new("systemd-repart")
                .args([
                    "--empty=create",
                    "--size=auto",
                    "--dry-run=no",
                    "--no-pager",
                ])
                .arg(format!("--definitions={}", defs.display()))
                .arg(d.join("repart.img")),
        )?);
        t_osimage = t_osimage.min(time(
            Command::new(osimage)
                .args(["--json", "build", "-d"])
                .arg(&def)
                .arg("-o")
                .arg(d.join("osimage.img")),
        )?);
    }
    println!("bench: systemd-repart   {:>7.3}s", t_repart.as_secs_f64());
    println!("bench: osimage build    {:>7.3}s", t_osimage.as_secs_f64());
    println!(
        "bench: image build time {:.2}x systemd-repart's (target <= 1.0x)",
        t_osimage.as_secs_f64() / t_repart.as_secs_f64()
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
