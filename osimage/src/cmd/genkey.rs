//! `osimage genkey`: a signing key and its self-signed certificate.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::Context;
use osimage::sign::{KeyAlgorithm, SigningIdentity};

#[derive(Debug, clap::Args)]
pub(crate) struct GenkeyArgs {
    /// Directory to write <name>.key and <name>.crt into.
    #[arg(long)]
    out_dir: PathBuf,
    #[arg(long, default_value = "verity")]
    name: String,
    /// The certificate's common name.
    #[arg(long, default_value = "Tessera image signing key")]
    common_name: String,
    /// rsa2048 signs everything: verity root hashes, PCR policies, provenance.
    /// p256 (ECDSA) signs verity root hashes and provenance; systemd 252 takes only
    /// RSA keys for signed PCR policies.
    #[arg(long, default_value = "rsa2048")]
    algorithm: KeyAlgorithm,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

pub(crate) fn genkey_cmd(args: &GenkeyArgs, json: bool) -> anyhow::Result<()> {
    let dir = &args.out_dir;
    let key = dir.join(format!("{}.key", args.name));
    let crt = dir.join(format!("{}.crt", args.name));
    for p in [&key, &crt] {
        anyhow::ensure!(
            args.force || !p.exists(),
            "{} exists (use --force to replace it)",
            p.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let id = SigningIdentity::generate_with(&args.common_name, args.algorithm)?;
    // The private key is never readable by others, not even for a moment.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key)
        .with_context(|| format!("write {}", key.display()))?;
    f.write_all(id.key_pem()?.as_bytes())
        .with_context(|| format!("write {}", key.display()))?;
    std::fs::write(&crt, id.cert_pem()?).with_context(|| format!("write {}", crt.display()))?;
    let fp = hex::encode(id.cert_fingerprint());
    if json {
        println!(
            "{}",
            serde_json::json!({
                "key": key,
                "certificate": crt,
                "algorithm": args.algorithm,
                "certificateFingerprint": fp,
            })
        );
    } else {
        println!(
            "key          {}\ncertificate  {}\nalgorithm    {}\nfingerprint  {fp}",
            key.display(),
            crt.display(),
            args.algorithm
        );
    }
    Ok(())
}
