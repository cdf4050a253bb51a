//! `osimage firstboot` and factory reset, through the binary, against the peers:
//! sfdisk makes and verifies the partition tables, cryptsetup reads the LUKS2 headers
//! and checks the keys, systemd-cryptenroll lists the enrolled slots, and the TPM is
//! swtpm, with tpm2-tools driving it into the states the bad-input cases need.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use osimage::disk::FileDisk;
use osimage::gpt::PartitionType;
use osimage::luks::Luks2;
use osimage::luks::unlock::recover_passphrase;
use osimage::pcr::PcrSig;
use tessera_rig::Swtpm;

#[path = "support/cryptsetup.rs"]
mod cryptsetup;
#[path = "support/disk.rs"]
mod disk;
#[path = "support/tpm.rs"]
mod tpm;
use disk::{definitions, digest, extract, find, installed_disk, read, table};
use tpm::{client, extend, pcr_keypair, pcrsig_for_current, run, tcti, tool};

struct Setup {
    dir: tempfile::TempDir,
    img: PathBuf,
    defs: PathBuf,
    public: PathBuf,
    key: PathBuf,
}

impl Setup {
    fn new(disk_mib: u64, encrypt: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let img = installed_disk(dir.path(), disk_mib);
        let defs = definitions(dir.path(), encrypt);
        let (key, public) = pcr_keypair(dir.path(), "pcr");
        std::fs::create_dir(dir.path().join("efivars")).unwrap();
        std::fs::create_dir(dir.path().join("run")).unwrap();
        std::fs::write(dir.path().join("cmdline"), "quiet\n").unwrap();
        Setup {
            dir,
            img,
            defs,
            public,
            key,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn osimage(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_osimage"));
        c.env("RUST_LOG", "off");
        c
    }

    /// Runs firstboot as the initrd would, with everything pointed into the test's
    /// directory. `tpm: None` means `--tpm none`.
    fn firstboot(&self, tpm: Option<&Swtpm>, extra: &[&str]) -> Output {
        let mut c = self.osimage();
        c.arg("firstboot")
            .arg("--disk")
            .arg(&self.img)
            .arg("--config")
            .arg(self.path("firstboot.toml"))
            .arg("--definitions")
            .arg(&self.defs)
            .arg("--tpm")
            .arg(tpm.map_or_else(|| "none".to_string(), tcti))
            .arg("--pcr-public-key")
            .arg(&self.public)
            .arg("--recovery-key-file")
            .arg(self.path("recovery-key"))
            .arg("--efivars")
            .arg(self.path("efivars"))
            .arg("--cmdline")
            .arg(self.path("cmdline"))
            .arg("--staging")
            .arg(self.path("run"))
            .args(extra);
        c.output().unwrap()
    }

    /// `osimage [ARGS] status` on the disk.
    fn status(&self, global: &[&str]) -> String {
        ok(&self
            .osimage()
            .args(global)
            .args(["status", "--disk"])
            .arg(&self.img)
            .arg("--efivars")
            .arg(self.path("efivars"))
            .output()
            .unwrap())
    }

    /// `osimage factory-reset SUB` with the test's EFI variables.
    fn factory_reset(&self, sub: &str) -> String {
        ok(&self
            .osimage()
            .args(["factory-reset", sub, "--efivars"])
            .arg(self.path("efivars"))
            .output()
            .unwrap())
    }

    fn recovery_key(&self) -> String {
        std::fs::read_to_string(self.path("recovery-key"))
            .unwrap()
            .trim()
            .to_string()
    }

    fn image_digest(&self) -> String {
        digest(&std::fs::read(&self.img).unwrap())
    }

    fn disk(&self) -> FileDisk {
        FileDisk::open(&self.img).unwrap()
    }

    /// The partition of `kind` as a file of its own.
    fn extract(&self, kind: PartitionType, name: &str) -> PathBuf {
        let d = self.disk();
        extract(&d, &find(&d, kind), &self.path(name))
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn luks_dump(img: &Path) -> serde_json::Value {
    let out = run(Command::new("cryptsetup")
        .args(["luksDump", "--dump-json-metadata"])
        .arg(img));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn token_types(dump: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = dump["tokens"]
        .as_object()
        .unwrap()
        .values()
        .map(|t| t["type"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn luks_uuid(img: &Path) -> String {
    let out = run(Command::new("cryptsetup").arg("luksUUID").arg(img));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What a reset must leave alone, byte for byte: the ESP, both usr slots, and home
/// (FactoryReset=no).
fn kept(s: &Setup) -> Vec<(String, String)> {
    let d = s.disk();
    table(&d)
        .iter()
        .filter(|p| !matches!(p.kind, PartitionType::Root | PartitionType::Swap))
        .map(|p| (format!("{} {}", p.kind, p.label), digest(&read(&d, p))))
        .collect()
}

/// `(name, partition number)` as sfdisk numbers the nodes.
fn entry_numbers(img: &Path) -> Vec<(String, u32)> {
    let prefix = img.display().to_string();
    sfdisk_json(img)["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let node = p["node"].as_str().unwrap();
            let n = node.strip_prefix(&prefix).unwrap().parse().unwrap();
            (p["name"].as_str().unwrap().to_owned(), n)
        })
        .collect()
}

fn sfdisk_json(img: &Path) -> serde_json::Value {
    let out = run(Command::new("sfdisk").arg("--json").arg(img));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The old key material, for proving a reset made it useless: the recovery key and
/// the passphrase the old token's TPM blob unseals to.
struct OldKeys {
    recovery: String,
    tpm_passphrase: Vec<u8>,
    uuid: String,
}

fn old_keys(s: &Setup, swtpm: &Swtpm, root: &Path, sig: &Path) -> OldKeys {
    let sig: PcrSig = serde_json::from_str(&std::fs::read_to_string(sig).unwrap()).unwrap();
    let mut luks = Luks2::open(root).unwrap();
    let (_, token) = luks.tpm2_tokens().unwrap().remove(0);
    let mut c = client(swtpm);
    let tpm_passphrase = recover_passphrase(&mut c, &token, Some(&sig)).unwrap();
    OldKeys {
        recovery: s.recovery_key(),
        tpm_passphrase,
        uuid: luks_uuid(root),
    }
}

fn assert_old_keys_open_nothing(old: &OldKeys, s: &Setup, root: &Path) {
    assert_ne!(
        luks_uuid(root),
        old.uuid,
        "the new root has a new LUKS UUID"
    );
    assert!(!cryptsetup::accepts(root, None, &old.recovery));
    let old_pass = String::from_utf8(old.tpm_passphrase.clone()).unwrap();
    assert!(!cryptsetup::accepts(root, None, &old_pass));
    let image = std::fs::read(&s.img).unwrap();
    assert!(
        !image
            .windows(old.uuid.len())
            .any(|w| w == old.uuid.as_bytes()),
        "no copy of the old header is left anywhere on the disk"
    );
}

#[test]
fn firstboot_completes_the_disk_and_a_factory_reset_replaces_every_key() {
    let swtpm = Swtpm::tcp().unwrap();
    let s = Setup::new(160, "tpm2");
    extend(&swtpm, 7, b"secure boot state");
    extend(&swtpm, 11, b"uki v1");
    let pristine = s.image_digest();

    // A dry run prints the plan and writes nothing.
    let plan: serde_json::Value =
        serde_json::from_str(&ok(&s.firstboot(Some(&swtpm), &["--dry-run", "--json"]))).unwrap();
    assert_eq!(plan["added"].as_array().unwrap().len(), 6, "{plan}");
    assert_eq!(s.image_digest(), pristine);

    let report: serde_json::Value =
        serde_json::from_str(&ok(&s.firstboot(Some(&swtpm), &["--json"]))).unwrap();
    assert_eq!(report["protection"], "tpm2-and-recovery-key", "{report}");
    run(Command::new("sfdisk").arg("--verify").arg(&s.img));
    let parts = sfdisk_json(&s.img)["partitiontable"]["partitions"].clone();
    let names: Vec<&str> = parts
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ESP",
            "tessera_1.0",
            "tessera_1.0",
            "tessera_1.0",
            "_empty",
            "_empty",
            "_empty",
            "root",
            "home",
            "swap"
        ]
    );
    assert_eq!(
        parts[7]["type"].as_str().unwrap().to_lowercase(),
        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
        "root is the x86-64 root type of the DPS"
    );
    let d = s.disk();
    let usr_a = find(&d, PartitionType::Usr);
    let usr_b = &table(&d)[4];
    assert_eq!(
        usr_b.sectors(),
        usr_a.sectors(),
        "the B slot is as large as A"
    );
    drop(d);

    // cryptsetup reads what libcryptsetup made; the recovery key opens it.
    let root1 = s.extract(PartitionType::Root, "root1.img");
    let dump = luks_dump(&root1);
    assert_eq!(token_types(&dump), ["systemd-recovery", "systemd-tpm2"]);
    assert_eq!(dump["segments"]["0"]["encryption"], "aes-xts-plain64");
    let tpm2 = dump["tokens"]
        .as_object()
        .unwrap()
        .values()
        .find(|t| t["type"] == "systemd-tpm2")
        .unwrap()
        .clone();
    assert_eq!(tpm2["tpm2-pcrs"], serde_json::json!([7]));
    assert_eq!(tpm2["tpm2_pubkey_pcrs"], serde_json::json!([11]));
    let k1 = s.recovery_key();
    assert!(cryptsetup::accepts(&root1, None, &k1));
    // systemd-cryptenroll reads our tokens and lists both kinds of slot.
    let listed = run(Command::new("systemd-cryptenroll").arg(&root1));
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains("tpm2") && listed.contains("recovery"),
        "{listed}"
    );
    // The TPM unlocks it with the signed PCR 11 policy.
    let sig1 = pcrsig_for_current(&swtpm, &s.key, s.dir.path());
    let out = s
        .osimage()
        .args(["unlock", "--test", "--device"])
        .arg(&root1)
        .arg("--tpm")
        .arg(tcti(&swtpm))
        .arg("--signature")
        .arg(&sig1)
        .output()
        .unwrap();
    ok(&out);

    // `osimage status` shows how the partitions open.
    let status: serde_json::Value = serde_json::from_str(&s.status(&["--json"])).unwrap();
    assert_eq!(status["encryption"], "tpm2-and-recovery-key", "{status}");
    assert_eq!(status["factoryReset"]["requested"], false);

    // Idempotent: a second boot changes nothing.
    let complete = s.image_digest();
    let out = ok(&s.firstboot(Some(&swtpm), &[]));
    assert!(out.contains("nothing to add"), "{out}");
    assert_eq!(s.image_digest(), complete);

    // A factory reset through the EFI variable.
    let before = kept(&s);
    let numbered = entry_numbers(&s.img);
    let old = old_keys(&s, &swtpm, &root1, &sig1);
    s.factory_reset("request");
    // Something left a transient object in the TPM (swtpm has no resource manager).
    run(tool(&swtpm, "tpm2_createprimary")
        .args(["-C", "o", "-c"])
        .arg(s.path("leftover.ctx")));
    let report: serde_json::Value =
        serde_json::from_str(&ok(&s.firstboot(Some(&swtpm), &["--json"]))).unwrap();
    assert!(
        report["reset"]["tpmObjectsFlushed"].as_u64().unwrap() >= 1,
        "{report}"
    );
    let transient = run(tool(&swtpm, "tpm2_getcap").arg("handles-transient"));
    assert!(
        String::from_utf8_lossy(&transient.stdout).trim().is_empty(),
        "tpm2_getcap still lists transient objects"
    );
    assert_eq!(
        report["reset"]["erased"],
        serde_json::json!(["8:root", "10:swap"]),
        "{report}"
    );
    let status = s.factory_reset("status");
    assert!(status.contains("no factory reset is requested"), "{status}");
    assert_eq!(
        kept(&s),
        before,
        "ESP, usr slots and home are byte-identical"
    );
    let root2 = s.extract(PartitionType::Root, "root2.img");
    assert_old_keys_open_nothing(&old, &s, &root2);
    let k2 = s.recovery_key();
    assert_ne!(k1, k2, "a new recovery key");
    assert!(cryptsetup::accepts(&root2, None, &k2));
    run(Command::new("sfdisk").arg("--verify").arg(&s.img));
    // No partition changed its number: home is still 9, and root and swap came back
    // as 8 and 10, so /dev/sdaN names survive a reset.
    assert_eq!(entry_numbers(&s.img), numbered);
    assert!(numbered.contains(&("home".to_owned(), 9)), "{numbered:?}");

    // A reset from a one-shot entry's command line (no EFI variable) happens once
    // per boot: the second firstboot of that boot leaves the new root alone.
    std::fs::write(s.path("cmdline"), "quiet systemd.factory_reset=yes\n").unwrap();
    let uuid2 = luks_uuid(&root2);
    ok(&s.firstboot(Some(&swtpm), &[]));
    let root3 = s.extract(PartitionType::Root, "root3.img");
    assert_ne!(luks_uuid(&root3), uuid2);
    let after = s.image_digest();
    ok(&s.firstboot(Some(&swtpm), &[]));
    assert_eq!(s.image_digest(), after);
}

#[test]
fn without_a_tpm_the_weaker_mode_is_used_and_shown_or_refused() {
    let s = Setup::new(160, "tpm2");
    let pristine = s.image_digest();
    std::fs::write(s.path("firstboot.toml"), "without-tpm = \"fail\"\n").unwrap();
    let out = s.firstboot(None, &[]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("no TPM"), "{}", stderr(&out));
    assert_eq!(s.image_digest(), pristine, "nothing was written");

    std::fs::remove_file(s.path("firstboot.toml")).unwrap();
    let out = s.firstboot(None, &[]);
    ok(&out);
    assert!(stderr(&out).contains("weaker mode"), "{}", stderr(&out));
    let root = s.extract(PartitionType::Root, "root.img");
    assert_eq!(token_types(&luks_dump(&root)), ["systemd-recovery"]);
    assert!(cryptsetup::accepts(&root, None, &s.recovery_key()));
    let status = s.status(&[]);
    assert!(
        status.contains("encryption: recovery key only (no TPM: weaker mode)"),
        "{status}"
    );
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    // A disk too small for root.
    let s = Setup::new(90, "tpm2");
    let swtpm = Swtpm::tcp().unwrap();
    let pristine = s.image_digest();
    let out = s.firstboot(Some(&swtpm), &[]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("too small"), "{}", stderr(&out));
    assert!(stderr(&out).contains("root 30 MiB"), "{}", stderr(&out));
    assert_eq!(s.image_digest(), pristine);

    // A definition that an existing partition contradicts: a plain root where the
    // definition wants an encrypted one.
    let s = Setup::new(160, "tpm2");
    run(Command::new("sfdisk")
        .args(["--quiet", "--append"])
        .arg(&s.img)
        .stdin(
            std::fs::File::open(write_file(
                s.dir.path(),
                "add",
                "size=40MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root\n",
            ))
            .unwrap(),
        ));
    let pristine = s.image_digest();
    let out = s.firstboot(Some(&swtpm), &[]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("holds no LUKS2 header"),
        "{}",
        stderr(&out)
    );
    assert_eq!(s.image_digest(), pristine);

    // A corrupted LUKS2 header (both copies): refused, shown as damaged, and a
    // factory reset is the way out.
    let s = Setup::new(160, "tpm2");
    ok(&s.firstboot(Some(&swtpm), &[]));
    {
        use osimage::disk::Disk;
        let mut d = s.disk();
        let root = find(&d, PartitionType::Root);
        for at in [4096 + 100, 0x4000 + 4096 + 100] {
            d.write_at(root.first_lba * 512 + at, b"garbage").unwrap();
        }
    }
    let damaged = s.image_digest();
    let out = s.firstboot(Some(&swtpm), &[]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));
    assert_eq!(s.image_digest(), damaged);
    let status = s.status(&[]);
    assert!(status.contains("DAMAGED"), "{status}");
    s.factory_reset("request");
    ok(&s.firstboot(Some(&swtpm), &[]));
    let root = s.extract(PartitionType::Root, "root.img");
    assert!(cryptsetup::accepts(&root, None, &s.recovery_key()));
}

/// Integrity=inline is refused on an image file before anything is written: its tags
/// are initialized through device-mapper on the partition's block device. (The
/// appliance's home has it; the guest test opens, fills and checks that volume.)
#[test]
fn integrity_on_an_image_file_is_refused_before_anything_is_written() {
    let s = Setup::new(220, "tpm2");
    let swtpm = Swtpm::tcp().unwrap();
    std::fs::write(
        s.defs.join("60-home.conf"),
        "[Partition]\nType=home\nFormat=btrfs\nEncrypt=tpm2\nIntegrity=inline\n\
         SizeMinBytes=90M\nSizeMaxBytes=90M\n",
    )
    .unwrap();
    let pristine = s.image_digest();
    // The plan shows it; only the run that writes needs the block device.
    let plan: serde_json::Value =
        serde_json::from_str(&ok(&s.firstboot(Some(&swtpm), &["--dry-run", "--json"]))).unwrap();
    let home = plan["added"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["type"] == "home"))
        .unwrap_or_else(|| panic!("no home in {plan}"));
    assert_eq!(home["integrity"], "hmac-sha256", "{plan}");
    let out = s.firstboot(Some(&swtpm), &[]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("`home` has Integrity=inline, which needs the disk as a block device")
            && e.contains("nothing was written"),
        "{e}"
    );
    assert_eq!(s.image_digest(), pristine);
    // Without Encrypt= it is a definition error, with the file, line and key.
    std::fs::write(
        s.defs.join("60-home.conf"),
        "[Partition]\nType=home\nIntegrity=inline\n",
    )
    .unwrap();
    let out = s.firstboot(Some(&swtpm), &[]);
    assert_ne!(out.status.code(), Some(0));
    let e = stderr(&out);
    assert!(
        e.contains("60-home.conf:3: key `Integrity`: Integrity=inline needs Encrypt="),
        "{e}"
    );
    assert_eq!(s.image_digest(), pristine);
}

#[test]
fn a_tpm_in_lockout_or_without_sha256_is_named_and_nothing_is_written() {
    // Dictionary-attack lockout: one allowed failure, spent on a wrong password.
    let swtpm = Swtpm::tcp().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ctx = |n: &str| dir.path().join(n);
    let flush = || run(tool(&swtpm, "tpm2_flushcontext").arg("-t"));
    run(tool(&swtpm, "tpm2_dictionarylockout").args([
        "--setup-parameters",
        "--max-tries=1",
        "--recovery-time=600",
        "--lockout-recovery-time=600",
    ]));
    run(tool(&swtpm, "tpm2_createprimary")
        .args(["-C", "o", "-c"])
        .arg(ctx("prim.ctx")));
    flush();
    run(tool(&swtpm, "tpm2_create")
        .args(["-C"])
        .arg(ctx("prim.ctx"))
        .args(["-p", "good", "-i"])
        .arg(write_file(dir.path(), "secret", "s"))
        .arg("-u")
        .arg(ctx("s.pub"))
        .arg("-r")
        .arg(ctx("s.priv")));
    flush();
    run(tool(&swtpm, "tpm2_load")
        .arg("-C")
        .arg(ctx("prim.ctx"))
        .arg("-u")
        .arg(ctx("s.pub"))
        .arg("-r")
        .arg(ctx("s.priv"))
        .arg("-c")
        .arg(ctx("s.ctx")));
    let wrong = tool(&swtpm, "tpm2_unseal")
        .arg("-c")
        .arg(ctx("s.ctx"))
        .args(["-p", "wrong"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    flush();
    assert!(client(&swtpm).in_lockout().unwrap(), "swtpm is locked out");

    let s = Setup::new(160, "tpm2");
    let pristine = s.image_digest();
    let out = s.firstboot(Some(&swtpm), &[]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("lockout"), "{}", stderr(&out));
    assert_eq!(s.image_digest(), pristine);

    let sha1_only = Swtpm::tcp_with_banks(&["sha1"]).unwrap();
    let out = s.firstboot(Some(&sha1_only), &[]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("sha256"), "{}", stderr(&out));
    assert_eq!(s.image_digest(), pristine);
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
