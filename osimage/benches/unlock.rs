//! The unlock path: recovering a systemd-tpm2 token's key through swtpm (salted
//! session, encrypted response) and checking it against the LUKS2 keyslot, against
//! the same work done by tpm2-tools (the C TSS stack) plus `cryptsetup open
//! --test-passphrase`, in one run. systemd-cryptsetup itself needs device-mapper
//! to attach, which the host lacks, so systemd's own unlock is timed only in the
//! guest. Run by `cargo xtask bench osimage`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use osimage::luks::Luks2;
use osimage::luks::unlock::recover_passphrase;
use osimage::tpm2::{TctiSpec, Tpm};

#[path = "../tests/support/cryptsetup.rs"]
mod cryptsetup;

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.stderr(Stdio::inherit()).output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed");
    out.stdout
}

fn main() {
    let runs: u32 = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let tpm = tessera_rig::Swtpm::tcp().unwrap();
    let tcti = tpm.tcti().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let img = d.join("disk.img");
    std::fs::write(d.join("pw"), "pass1").unwrap();
    run(Command::new("truncate").arg("-s").arg("24M").arg(&img));
    run(Command::new("cryptsetup")
        .args([
            "luksFormat",
            "--type",
            "luks2",
            "--batch-mode",
            "--key-file",
        ])
        .arg(d.join("pw"))
        .arg(&img));
    run(Command::new("systemd-cryptenroll")
        .env("PASSWORD", "pass1")
        .arg(format!("--tpm2-device={tcti}"))
        .arg("--tpm2-pcrs=7")
        .arg(&img)
        .stdin(Stdio::null()));
    let mut luks = Luks2::open(&img).unwrap();
    let (_, token) = luks.tpm2_tokens().unwrap().remove(0);
    let keyslot = token.keyslots().unwrap()[0];
    let sealed = token.sealed().unwrap();
    std::fs::write(d.join("priv"), &sealed.private).unwrap();
    std::fs::write(d.join("pub"), &sealed.public).unwrap();

    println!("bench: unlock (unseal through swtpm + keyslot check), best of {runs}");
    let mut ours = Duration::MAX;
    {
        let mut tpm = Tpm::open(&tcti.parse::<TctiSpec>().unwrap()).unwrap();
        for _ in 0..runs {
            let t = Instant::now();
            let pass = recover_passphrase(&mut tpm, &token, None).unwrap();
            luks.check(Some(keyslot), &pass).unwrap();
            ours = ours.min(t.elapsed());
        }
    }

    let mut theirs = Duration::MAX;
    let tool = |program: &str| {
        let mut c = Command::new(program);
        c.env("TPM2TOOLS_TCTI", &tcti).current_dir(d);
        c
    };
    for _ in 0..runs {
        let t = Instant::now();
        run(tool("tpm2_createprimary").args([
            "-C",
            "o",
            "-G",
            "ecc256:aes128cfb",
            "-g",
            "sha256",
            "-a",
            "restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth",
            "-c",
            "prim.ctx",
        ]));
        // No resource manager: free the TPM's few object slots between commands.
        run(tool("tpm2_flushcontext").arg("-t"));
        run(tool("tpm2_load").args(["-C", "prim.ctx", "-u", "pub", "-r", "priv", "-c", "obj.ctx"]));
        run(tool("tpm2_flushcontext").arg("-t"));
        run(tool("tpm2_startauthsession").args([
            "--policy-session",
            "-S",
            "s.ctx",
            "-c",
            "prim.ctx",
        ]));
        run(tool("tpm2_flushcontext").arg("-t"));
        run(tool("tpm2_policypcr").args(["-S", "s.ctx", "-l", "sha256:7"]));
        let secret = run(tool("tpm2_unseal").args(["-c", "obj.ctx", "-p", "session:s.ctx"]));
        run(tool("tpm2_flushcontext").arg("-t"));
        run(tool("tpm2_flushcontext").arg("-l"));
        run(tool("tpm2_flushcontext").arg("-s"));
        let pass = STANDARD.encode(secret);
        assert!(
            cryptsetup::accepts(&img, Some(keyslot), &pass),
            "cryptsetup refused the unsealed key"
        );
        theirs = theirs.min(t.elapsed());
    }
    println!(
        "bench: osimage unlock --test        {:>8.1} ms",
        ours.as_secs_f64() * 1e3
    );
    println!(
        "bench: tpm2-tools + cryptsetup      {:>8.1} ms",
        theirs.as_secs_f64() * 1e3
    );
    println!(
        "bench: unlock {:.2}x faster than the tpm2-tools peer (target >= 1.0x of systemd's)",
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
}
