//! `osimage build`, checked by the tools that define the formats: sfdisk,
//! systemd-dissect, veritysetup, openssl.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Options, build, fixture, osimage, report};
use osimage::verity::sig::VeritySig;

fn extract(image: &Path, offset: u64, size: u64, to: &Path) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(image).unwrap();
    let mut buf = vec![0u8; size as usize];
    f.read_exact_at(&mut buf, offset).unwrap();
    std::fs::write(to, buf).unwrap();
}

/// A read-only loop device with the image's logical sector size: sfdisk 2.38 and
/// systemd-dissect 252 read a plain file as 512-byte sectors, so a 4 KiB-sector image
/// is shown to them the way a 4Kn disk would be. Detached on drop.
struct Loop(String);

impl Loop {
    fn attach(image: &Path, sector_size: u32) -> Loop {
        let out = Command::new("losetup")
            .args([
                "--find",
                "--show",
                "--read-only",
                "--partscan",
                "--sector-size",
            ])
            .arg(sector_size.to_string())
            .arg(image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop(String::from_utf8(out.stdout).unwrap().trim().to_owned())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

fn sfdisk_dump(device: &str) -> String {
    let out = common::run_ok(Command::new("sfdisk").arg("-d").arg(device));
    // The device path varies; golden files use a fixed name.
    String::from_utf8(out.stdout)
        .unwrap()
        .replace(&format!("{device}p"), "disk.img")
        .replace(device, "disk.img")
}

/// Compares with the checked-in golden file; TESSERA_UPDATE_GOLDEN=1 rewrites it.
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("TESSERA_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        actual,
        want,
        "{} differs (TESSERA_UPDATE_GOLDEN=1 to accept)",
        path.display()
    );
}

fn check_image(sector_size: u32) {
    let fx = fixture(Options {
        sector_size,
        ..Options::default()
    });
    let img = fx.dir.path().join("disk.img");
    let rep = report(&build(&fx.definition, &img, &[]));
    let root = rep["rootHash"].as_str().unwrap().to_owned();
    assert!(
        rep["cmdline"]
            .as_str()
            .unwrap()
            .ends_with(&format!("usrhash={root}"))
    );

    let device = if sector_size == 512 {
        None
    } else {
        Some(Loop::attach(&img, sector_size))
    };
    let target = device
        .as_ref()
        .map_or(img.display().to_string(), |l| l.0.clone());
    golden(&format!("sfdisk-{sector_size}.txt"), &sfdisk_dump(&target));

    // systemd-dissect finds the three usr partitions by their DPS types, with the
    // partition UUIDs usrhash= looks for: the halves of our root hash.
    let dissect = common::dissect(&target);
    let uuid_of = |designator: &str| {
        common::dissected(&dissect, designator)["partition_uuid"]
            .as_str()
            .unwrap()
            .replace('-', "")
    };
    assert_eq!(uuid_of("usr"), root[..32]);
    assert_eq!(uuid_of("usr-verity"), root[32..]);
    uuid_of("usr-verity-sig");
    uuid_of("esp");
    let usr = common::dissected(&dissect, "usr");
    assert_eq!(usr["fstype"], "erofs");
    assert_eq!(usr["rw"], "ro");
    assert_eq!(dissect["osRelease"][0], "ID=tessera");

    // veritysetup verifies the partitions as written, with our root hash.
    let parts = rep["plan"]["partitions"].as_array().unwrap();
    let part = |t: &str| parts.iter().find(|p| p["type"] == t).unwrap();
    let (usr_p, hash_p, sig_p) = (part("usr"), part("usr-verity"), part("usr-verity-sig"));
    let d = fx.dir.path();
    extract(
        &img,
        usr_p["offset"].as_u64().unwrap(),
        usr_p["size"].as_u64().unwrap(),
        &d.join("usr.part"),
    );
    extract(
        &img,
        hash_p["offset"].as_u64().unwrap(),
        hash_p["size"].as_u64().unwrap(),
        &d.join("hash.part"),
    );
    extract(
        &img,
        sig_p["offset"].as_u64().unwrap(),
        sig_p["size"].as_u64().unwrap(),
        &d.join("sig.part"),
    );
    let out = Command::new("veritysetup")
        .arg("verify")
        .arg(d.join("usr.part"))
        .arg(d.join("hash.part"))
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "veritysetup verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The signature partition holds our root hash, signed; openssl accepts it.
    let sig = VeritySig::from_partition(&std::fs::read(d.join("sig.part")).unwrap()).unwrap();
    assert_eq!(sig.root_hash, root);
    std::fs::write(d.join("sig.p7s"), sig.signature_der().unwrap()).unwrap();
    std::fs::write(d.join("roothash.txt"), &root).unwrap();
    let out = common::openssl_cms_verify(
        &d.join("sig.p7s"),
        &d.join("roothash.txt"),
        &d.join("keys/verity.crt"),
    );
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn image_with_512_byte_sectors_passes_sfdisk_dissect_veritysetup_openssl() {
    check_image(512);
}

#[test]
fn image_with_4096_byte_sectors_passes_sfdisk_dissect_veritysetup_openssl() {
    check_image(4096);
}

#[test]
fn rebuilds_are_bit_identical() {
    let fx = fixture(Options::default());
    let a = fx.dir.path().join("a.img");
    let b = fx.dir.path().join("b.img");
    report(&build(&fx.definition, &a, &[]));
    report(&build(&fx.definition, &b, &[]));
    let out = Command::new("cmp").arg(&a).arg(&b).output().unwrap();
    assert!(
        out.status.success(),
        "cmp: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let fx = fixture(Options::default());
    let img = fx.dir.path().join("disk.img");
    let rep = report(&build(&fx.definition, &img, &["--dry-run"]));
    assert_eq!(rep["written"], false);
    let parts = rep["plan"]["partitions"].as_array().unwrap();
    let kinds: Vec<&str> = parts.iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["esp", "usr", "usr-verity", "usr-verity-sig"]);
    for p in parts {
        assert_eq!(p["offset"].as_u64().unwrap() % (1 << 20), 0);
    }
    assert!(!img.exists());
    let leftovers: Vec<_> = std::fs::read_dir(fx.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".osimage"))
        .collect();
    assert!(leftovers.is_empty());
}

fn assert_fails_cleanly(fx: &common::Fixture, needle: &str) {
    let img = fx.dir.path().join("disk.img");
    let out = build(&fx.definition, &img, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "build must fail");
    assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
    assert!(!img.exists(), "a failed build must not leave an image");
    let partial: Vec<_> = std::fs::read_dir(fx.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".osimage"))
        .collect();
    assert!(partial.is_empty(), "partial files left: {partial:?}");
}

/// Adds `extra-trees = [<entries>]` to the fixture's `[usr]` section.
fn set_extra_trees(fx: &common::Fixture, entries: &str) {
    let text = std::fs::read_to_string(&fx.definition).unwrap();
    std::fs::write(
        &fx.definition,
        text.replace(
            "tree = \"tree\"\n",
            &format!("tree = \"tree\"\nextra-trees = [{entries}]\n"),
        ),
    )
    .unwrap();
}

/// The in-toto statement inside the DSSE envelope written beside `img`.
fn provenance_statement(img: &Path) -> serde_json::Value {
    let line = std::fs::read_to_string(osimage::provenance::path_for(img)).unwrap();
    let env: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(env["payloadType"], "application/vnd.in-toto+json");
    use base64::Engine;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

/// `extra-trees` lays the shipped firstboot definitions into the image's /usr, where
/// `osimage firstboot` reads them by default. erofs's own fsck extracts them intact,
/// and the tree the definition names is left as it was.
#[test]
fn extra_trees_ship_the_firstboot_definitions_in_usr() {
    let fx = fixture(Options::default());
    let d = fx.dir.path();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/appliance/firstboot.d");
    std::fs::write(d.join("motd"), "welcome\n").unwrap();
    set_extra_trees(
        &fx,
        &format!(
            "\"{}:/lib/osimage/repart.d\", \"motd:share/factory/etc/motd\"",
            shipped.display()
        ),
    );
    let img = d.join("disk.img");
    let rep = report(&build(&fx.definition, &img, &[]));
    let parts = rep["plan"]["partitions"].as_array().unwrap();
    let usr = parts.iter().find(|p| p["type"] == "usr").unwrap();
    extract(
        &img,
        usr["offset"].as_u64().unwrap(),
        usr["size"].as_u64().unwrap(),
        &d.join("usr.part"),
    );
    let out = d.join("usr");
    common::run_ok(
        Command::new("fsck.erofs")
            .arg(format!("--extract={}", out.display()))
            .arg("--no-preserve")
            .arg(d.join("usr.part")),
    );
    let mut names = Vec::new();
    for e in std::fs::read_dir(&shipped).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        let inside = std::fs::read(out.join("lib/osimage/repart.d").join(&name)).unwrap();
        assert_eq!(inside, std::fs::read(e.path()).unwrap(), "{name:?}");
        names.push(name);
    }
    assert!(names.len() >= 5, "the shipped set: {names:?}");
    assert_eq!(
        std::fs::read_to_string(out.join("share/factory/etc/motd")).unwrap(),
        "welcome\n"
    );
    // The base tree is still in the image, and untouched on disk.
    assert!(out.join("bin/hello").is_file());
    assert!(!d.join("tree/lib/osimage").exists());
    assert!(!d.join("tree/share/factory/etc/motd").exists());
    // The provenance names each extra tree as a material.
    let st = provenance_statement(&img);
    let deps = st["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = deps.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"usr-extra-tree:/usr/lib/osimage/repart.d")
            && names.contains(&"usr-extra-tree:/usr/share/factory/etc/motd"),
        "{names:?}"
    );
}

#[test]
fn bad_inputs_give_clear_errors_and_write_nothing() {
    // A /usr tree with /etc content.
    let fx = fixture(Options::default());
    std::fs::create_dir_all(fx.dir.path().join("tree/etc")).unwrap();
    assert_fails_cleanly(&fx, "not hermetic");
    // --allow-non-hermetic builds it, and the report carries the warning.
    let img = fx.dir.path().join("disk.img");
    let rep = report(&build(&fx.definition, &img, &["--allow-non-hermetic"]));
    let warnings = rep["warnings"].as_array().expect("warnings in the report");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap_or("").contains("etc")),
        "no warning names /etc: {warnings:?}"
    );
    assert!(img.exists());

    // An extra tree aimed outside /usr, one that is not SOURCE:TARGET, one whose
    // source is missing, and one that makes /usr non-hermetic.
    for (extra, needle) in [
        ("\"motd:../etc/motd\"", "extra-trees"),
        ("\"motd\"", "is not SOURCE:TARGET"),
        ("\"nothere:/share/x\"", "nothere"),
        ("\"motd:/etc/motd\"", "not hermetic"),
    ] {
        let fx = fixture(Options::default());
        std::fs::write(fx.dir.path().join("motd"), "hi\n").unwrap();
        set_extra_trees(&fx, extra);
        assert_fails_cleanly(&fx, needle);
    }

    // A certificate that is not the key's.
    let fx = fixture(Options::default());
    let other = osimage::sign::SigningIdentity::generate("other").unwrap();
    std::fs::write(
        fx.dir.path().join("keys/verity.crt"),
        other.cert_pem().unwrap(),
    )
    .unwrap();
    assert_fails_cleanly(&fx, "does not belong to key");

    // A missing key.
    let fx = fixture(Options::default());
    std::fs::remove_file(fx.dir.path().join("keys/verity.key")).unwrap();
    assert_fails_cleanly(&fx, "verity.key: cannot read");

    // A partition that does not fit its SizeMaxBytes.
    let fx = fixture(Options::default());
    let text = std::fs::read_to_string(&fx.definition).unwrap();
    let text = text.replace(
        "Format = \"erofs\"\n",
        "Format = \"erofs\"\nSizeMaxBytes = \"1K\"\n",
    );
    std::fs::write(&fx.definition, text).unwrap();
    assert_fails_cleanly(&fx, "SizeMaxBytes is 1024");

    // An unknown partition type names the file, line and key.
    let fx = fixture(Options::default());
    let text = std::fs::read_to_string(&fx.definition).unwrap();
    std::fs::write(
        &fx.definition,
        text.replace("Type = \"usr-verity-sig\"", "Type = \"usr-verity-sgi\""),
    )
    .unwrap();
    assert_fails_cleanly(&fx, "image.toml:");
    let out = build(&fx.definition, &fx.dir.path().join("x.img"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("key `partition[3].Type`") && stderr.contains("unknown partition type"),
        "{stderr}"
    );

    // A stub that is not a PE.
    let fx = fixture(Options::default());
    let bogus = fx.dir.path().join("bogus.stub");
    std::fs::write(&bogus, "MZ but not really").unwrap();
    let text = std::fs::read_to_string(&fx.definition).unwrap();
    let stub_line = text
        .lines()
        .find(|l| l.starts_with("stub = "))
        .unwrap()
        .to_owned();
    std::fs::write(
        &fx.definition,
        text.replace(&stub_line, &format!("stub = \"{}\"", bogus.display())),
    )
    .unwrap();
    assert_fails_cleanly(&fx, "not a PE image");
}

/// The fixture's image.toml with its `[[partition]]` tables replaced by repart.d
/// files, each `(name, keys)` written under `[Partition]`.
fn repart_definition(fx: &common::Fixture, files: &[(&str, &str)]) -> std::path::PathBuf {
    let d = fx.dir.path();
    let rd = d.join("repart.d");
    std::fs::create_dir_all(&rd).unwrap();
    for (name, keys) in files {
        std::fs::write(rd.join(name), format!("[Partition]\n{keys}")).unwrap();
    }
    let text = std::fs::read_to_string(&fx.definition).unwrap();
    let head = text.split("[[partition]]").next().unwrap();
    let def = d.join("image-repart.toml");
    // First: after the last table the key would belong to [signing].
    std::fs::write(&def, format!("repart-d = \"repart.d\"\n{head}")).unwrap();
    def
}

#[test]
fn repart_d_definitions_build_the_same_image() {
    let fx = fixture(Options::default());
    let d = fx.dir.path();
    let a = d.join("toml.img");
    let rep_a = report(&build(&fx.definition, &a, &[]));

    // The same partitions as systemd repart.d files.
    let def_b = repart_definition(
        &fx,
        &[
            ("00-esp.conf", "Type=esp\nSizeMinBytes=64M\n"),
            (
                "10-usr.conf",
                "Type=usr\nFormat=erofs\nVerity=data\nVerityMatchKey=usr\n",
            ),
            (
                "20-usr-verity.conf",
                "Type=usr-verity\nVerity=hash\nVerityMatchKey=usr\n",
            ),
            (
                "30-usr-verity-sig.conf",
                "Type=usr-verity-sig\nVerity=signature\nVerityMatchKey=usr\n",
            ),
        ],
    );
    let b = d.join("repart.img");
    let rep_b = report(&build(&def_b, &b, &[]));
    assert_eq!(rep_a["plan"], rep_b["plan"]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn provenance_is_signed_and_catches_tampering() {
    let fx = fixture(Options::default());
    let d = fx.dir.path();
    let img = d.join("disk.img");
    let rep = report(&build(&fx.definition, &img, &[]));
    let prov = d.join("disk.img.intoto.jsonl");
    assert_eq!(rep["provenance"], prov.display().to_string());

    // The envelope is DSSE around an in-toto SLSA v1 statement.
    let st = provenance_statement(&img);
    assert_eq!(st["predicateType"], "https://slsa.dev/provenance/v1");
    let names: Vec<&str> = st["subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "disk.img",
            "EFI/Linux/tessera_1.0.efi",
            "partition/1/esp",
            "partition/2/usr",
            "partition/3/usr-verity",
            "partition/4/usr-verity-sig"
        ]
    );
    let deps = st["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    assert!(deps.iter().any(|m| m["name"] == "usr-tree"));
    assert!(
        deps.iter()
            .any(|m| m["name"].as_str().unwrap().starts_with("kernel:vmlinuz"))
    );

    let verify = |cert: &Path| {
        osimage()
            .arg("verify-provenance")
            .arg(&img)
            .arg("--cert")
            .arg(cert)
            .output()
            .unwrap()
    };
    let out = verify(&d.join("keys/verity.crt"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Another key's certificate does not verify it.
    let other = osimage::sign::SigningIdentity::generate("other").unwrap();
    std::fs::write(d.join("other.crt"), other.cert_pem().unwrap()).unwrap();
    let out = verify(&d.join("other.crt"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature does not verify"));

    // One flipped bit in /usr is caught.
    let usr_off = rep["plan"]["partitions"][1]["offset"].as_u64().unwrap();
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[usr_off as usize + 1000] ^= 1;
    std::fs::write(&img, bytes).unwrap();
    let out = verify(&d.join("keys/verity.crt"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("digest is"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn xbootldr_takes_the_uki_and_other_types_are_empty_partitions() {
    let fx = fixture(Options {
        extra_partitions: "\n[[partition]]\nType = \"xbootldr\"\n\n[[partition]]\nType = \"0fc63daf-8483-4772-8e79-3d69d8477de4\"\nLabel = \"scratch\"\nSizeMinBytes = \"2M\"\n".into(),
        ..Options::default()
    });
    let img = fx.dir.path().join("disk.img");
    let rep = report(&build(&fx.definition, &img, &[]));
    let parts = rep["plan"]["partitions"].as_array().unwrap();
    assert_eq!(parts[4]["type"], "xbootldr");
    assert_eq!(parts[5]["label"], "scratch");
    assert_eq!(parts[5]["size"], 2 << 20);
    common::dissected(&common::dissect(&img), "xbootldr");

    // The UKI is on XBOOTLDR, systemd-boot on the ESP.
    use osimage::boot::esp::{EspLocation, list};
    let mut disk = osimage::disk::FileDisk::open(&img).unwrap();
    let gpt = osimage::disk::read_gpt(&disk).unwrap();
    let loc = |i: usize| EspLocation::of(&gpt.partitions[i], gpt.sector_size);
    assert_eq!(
        list(&mut disk, loc(4), "EFI/Linux").unwrap(),
        ["tessera_1.0.efi"]
    );
    assert!(list(&mut disk, loc(0), "EFI/Linux").unwrap().is_empty());
    assert_eq!(
        list(&mut disk, loc(0), "EFI/BOOT").unwrap(),
        ["BOOTX64.EFI"]
    );
}

/// repart.d files as a systemd-repart user writes them: a squashfs /usr picked by
/// `CopyFiles=` from the image's /usr, labels with specifiers, and 1 KiB data and
/// 2 KiB hash blocks for verity. unsquashfs, veritysetup and systemd-dissect read
/// the result.
#[test]
fn squashfs_usr_copy_files_specifier_labels_and_small_verity_blocks() {
    let fx = fixture(Options::default());
    let d = fx.dir.path();
    let def = repart_definition(
        &fx,
        &[
            ("00-esp.conf", "Type=esp\nSizeMinBytes=64M\nLabel=%M-esp\n"),
            (
                "10-usr.conf",
                "Type=usr\nFormat=squashfs\nCopyFiles=/usr/bin:/bin /usr/lib:/lib\n\
             Label=%o_%A\nVerity=data\nVerityMatchKey=usr\n",
            ),
            (
                "20-usr-verity.conf",
                "Type=usr-verity\nVerity=hash\nVerityMatchKey=usr\n\
             VerityDataBlockSizeBytes=1K\nVerityHashBlockSizeBytes=2048\n",
            ),
            (
                "30-usr-verity-sig.conf",
                "Type=usr-verity-sig\nVerity=signature\nVerityMatchKey=usr\n",
            ),
        ],
    );
    let img = d.join("disk.img");
    let rep = report(&build(&def, &img, &[]));
    let root = rep["rootHash"].as_str().unwrap().to_owned();
    let parts = rep["plan"]["partitions"].as_array().unwrap();
    let part = |t: &str| parts.iter().find(|p| p["type"] == t).unwrap();
    // %o is the os-release ID, %A the version, %M the image name.
    assert_eq!(part("usr")["label"], "tessera_1.0");
    assert_eq!(part("esp")["label"], "tessera-esp");
    for (name, p) in [("usr.part", part("usr")), ("hash.part", part("usr-verity"))] {
        extract(
            &img,
            p["offset"].as_u64().unwrap(),
            p["size"].as_u64().unwrap(),
            &d.join(name),
        );
    }

    // Only what CopyFiles= picked from the tree is in the file system.
    let out = common::run_ok(Command::new("unsquashfs").arg("-l").arg(d.join("usr.part")));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("squashfs-root/bin/hello"), "{listing}");
    assert!(
        listing.contains("squashfs-root/lib/os-release"),
        "{listing}"
    );
    assert!(
        !listing.contains("share"),
        "share/ was not picked: {listing}"
    );

    // veritysetup reads our block sizes from the superblock and verifies with them.
    let out = common::run_ok(
        Command::new("veritysetup")
            .arg("dump")
            .arg(d.join("hash.part")),
    );
    let dump = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        dump.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {dump}"))
    };
    assert_eq!(field("Data block size:"), "1024");
    assert_eq!(field("Hash block size:"), "2048");
    common::run_ok(
        Command::new("veritysetup")
            .arg("verify")
            .arg(d.join("usr.part"))
            .arg(d.join("hash.part"))
            .arg(&root),
    );

    // systemd-dissect sees a squashfs /usr whose partition UUID is the first half of
    // our root hash (252's --root-hash= matches root partitions only).
    let dissect = common::dissect(&img);
    let usr = common::dissected(&dissect, "usr");
    assert_eq!(usr["fstype"], "squashfs", "{dissect}");
    assert_eq!(usr["partition_label"], "tessera_1.0", "{dissect}");
    assert_eq!(
        usr["partition_uuid"].as_str().unwrap().replace('-', ""),
        root[..32],
        "{dissect}"
    );
}
