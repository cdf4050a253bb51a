//! The image definition's parsing and validation, against the shipped
//! appliance definition and hand-made bad ones.

use super::*;

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/appliance")
}

#[test]
fn the_shipped_example_parses_and_matches_its_repart_d() {
    let def = ImageDefinition::load(&shipped().join("image.toml")).unwrap();
    assert_eq!(def.image.name, "tessera");
    assert_eq!(def.partitions.len(), 4);
    assert!(def.uki.kernel.is_absolute());
    let from_repart = repart_conf::load_dir(&shipped().join("repart.d")).unwrap();
    assert_eq!(def.partitions, from_repart);
    // The image ships firstboot's definitions where firstboot looks for them.
    let extra = &def.usr.extra_trees[0];
    assert!(extra.source.join("50-root.conf").is_file(), "{extra:?}");
    assert_eq!(extra.target, Path::new("lib/osimage/repart.d"));
}

#[test]
fn extra_trees_are_source_colon_a_path_inside_usr() {
    let t = ExtraTree::try_from("a/b:/lib/x".to_owned()).unwrap();
    assert_eq!(t.source, Path::new("a/b"));
    assert_eq!(t.target, Path::new("lib/x"));
    assert_eq!(
        ExtraTree::try_from("a:share".to_owned()).unwrap().target,
        Path::new("share")
    );
    // `/` lays a tree over /usr itself.
    assert_eq!(
        ExtraTree::try_from("a:/".to_owned()).unwrap().target,
        Path::new("")
    );
    for bad in ["a", ":lib", "a:../etc", "a:lib/../../x", "a:./x"] {
        assert!(ExtraTree::try_from(bad.to_owned()).is_err(), "{bad}");
    }
}

#[test]
fn bad_values_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(shipped().join("image.toml")).unwrap();
    let path = dir.path().join("image.toml");
    std::fs::write(
        &path,
        text.replace("SizeMinBytes = \"1G\"", "SizeMinBytes = \"1Q\""),
    )
    .unwrap();
    let e = ImageDefinition::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("image.toml:") && e.contains("key `partition[1].SizeMinBytes`"),
        "{e}"
    );
    assert!(e.contains("bad size suffix"), "{e}");
    std::fs::write(
        &path,
        text.replace("sector-size = 512", "sector-size = 1024"),
    )
    .unwrap();
    let e = ImageDefinition::load(&path).unwrap_err().to_string();
    let line = text
        .lines()
        .position(|l| l.starts_with("sector-size"))
        .unwrap()
        + 1;
    assert!(
        e.contains(&format!(
            "image.toml:{line}: key `image.sector-size`: must be 512 or 4096"
        )),
        "{e}"
    );
    // Integrity is checked like the other keys, and needs a LUKS2 volume.
    let home = "\n[[partition]]\nType = \"home\"\nIntegrity = \"inline\"\n";
    std::fs::write(&path, format!("{text}{home}IntegrityAlgorithm = \"crc\"\n")).unwrap();
    let e = ImageDefinition::load(&path).unwrap_err().to_string();
    assert!(e.contains("IntegrityAlgorithm"), "{e}");
    std::fs::write(&path, format!("{text}{home}")).unwrap();
    let e = ImageDefinition::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("home partition: Integrity=inline needs Encrypt="),
        "{e}"
    );
    // The Integrity line of the 5th [[partition]] table.
    let home_line = text.lines().count() + 4;
    assert!(
        e.contains(&format!(
            "image.toml:{home_line}: key `partition[4].Integrity`"
        )),
        "{e}"
    );
    std::fs::write(&path, format!("{text}{home}Encrypt = \"tpm2\"\n")).unwrap();
    let d = ImageDefinition::load(&path).unwrap();
    let home = d.partitions.last().unwrap();
    assert_eq!(
        home.integrity(),
        Some(partition::IntegrityAlgorithm::HmacSha256)
    );
}

/// image.toml with the shipped [[partition]] tables replaced by `partitions`.
fn with_partitions(dir: &Path, partitions: &str) -> PathBuf {
    let text = std::fs::read_to_string(shipped().join("image.toml")).unwrap();
    let head = &text[..text.find("[[partition]]").unwrap()];
    let path = dir.join("image.toml");
    std::fs::write(&path, format!("{head}{partitions}")).unwrap();
    path
}

const ESP: &str = "[[partition]]\nType = \"esp\"\n";

#[test]
fn rules_across_keys_name_the_line_and_key_in_image_toml() {
    let dir = tempfile::tempdir().unwrap();
    let err = |partitions: &str| {
        let path = with_partitions(dir.path(), partitions);
        let text = std::fs::read_to_string(&path).unwrap();
        let e = ImageDefinition::load(&path).unwrap_err().to_string();
        (text, e)
    };
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    let (text, e) = err(&format!(
        "{ESP}[[partition]]\nType = \"usr\"\nSizeMinBytes = \"2G\"\nSizeMaxBytes = \"1G\"\n"
    ));
    let want = format!(
        "image.toml:{}: key `partition[1].SizeMaxBytes`: usr partition: SizeMaxBytes is less than SizeMinBytes",
        line_of(&text, "SizeMaxBytes")
    );
    assert!(e.contains(&want), "{e}");
    let (text, e) = err(&format!(
        "{ESP}[[partition]]\nType = \"usr\"\nVerity = \"hash\"\nVerityMatchKey = \"usr\"\n"
    ));
    assert!(
        e.contains(&format!(
            "image.toml:{}: key `partition[1].Verity`: usr partition cannot have Verity=hash",
            line_of(&text, "Verity =")
        )),
        "{e}"
    );
    // A key left out points at the table that lacks it.
    let (text, e) = err(&format!(
        "{ESP}[[partition]]\nType = \"usr\"\nVerity = \"data\"\n"
    ));
    let usr_table = text.match_indices("[[partition]]").nth(1).unwrap().0;
    let table_line = text[..usr_table].lines().count() + 1;
    assert!(
        e.contains(&format!("image.toml:{table_line}: key `partition[1].VerityMatchKey`: usr partition: VerityMatchKey must be `usr`")),
        "{e}"
    );
    let (_, e) = err(&format!("{ESP}{ESP}[[partition]]\nType = \"usr\"\n"));
    assert!(
        e.contains("key `partition[1].Type`: exactly one esp partition is needed, this is another"),
        "{e}"
    );
    let (_, e) = err(ESP);
    assert!(
        e.contains("key `partition`: exactly one usr partition is needed, there is none"),
        "{e}"
    );
}

#[test]
fn rules_across_keys_name_the_line_and_key_in_repart_conf_files() {
    let dir = tempfile::tempdir().unwrap();
    let repart = dir.path().join("repart.d");
    std::fs::create_dir(&repart).unwrap();
    std::fs::write(repart.join("00-esp.conf"), "[Partition]\nType=esp\n").unwrap();
    let usr = repart.join("10-usr.conf");
    std::fs::write(
        &usr,
        "[Partition]\nType=usr\nVerity=data\nVerityMatchKey=root\n",
    )
    .unwrap();
    // The key goes first: after the last table it would belong to [signing].
    let path = with_partitions(dir.path(), "");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("repart-d = \"repart.d\"\n{text}")).unwrap();
    let e = ImageDefinition::load(&path).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}:4: key `VerityMatchKey`: usr partition: VerityMatchKey must be `usr`",
            usr.display()
        )
    );
    std::fs::write(
        &usr,
        "[Partition]\nType=usr\nSizeMaxBytes=1M\nSizeMinBytes=2M\n",
    )
    .unwrap();
    let e = ImageDefinition::load(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:3: key `SizeMaxBytes`", usr.display())),
        "{e}"
    );
    std::fs::write(
        repart.join("20-esp.conf"),
        "# again\n[Partition]\nType=esp\n",
    )
    .unwrap();
    std::fs::write(&usr, "[Partition]\nType=usr\n").unwrap();
    let e = ImageDefinition::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("20-esp.conf:3: key `Type`: exactly one esp"),
        "{e}"
    );
}

#[test]
fn labels_expand_specifiers_and_refuse_the_build_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let path = with_partitions(
        dir.path(),
        &format!("{ESP}Label = \"%M-boot-%A\"\n[[partition]]\nType = \"usr\"\nLabel = \"%o_%A\"\n"),
    );
    // The shipped image.toml names build/usr/lib/os-release, beside the file.
    let os_release = dir.path().join("build/usr/lib/os-release");
    std::fs::create_dir_all(os_release.parent().unwrap()).unwrap();
    std::fs::write(&os_release, "NAME=\"Tessera OS\"\nID=\"tessera-os\"\n").unwrap();
    let def = ImageDefinition::load(&path).unwrap();
    let v = &def.image.version;
    assert_eq!(
        def.partitions[0].label,
        Some(format!("{}-boot-{v}", def.image.name))
    );
    assert_eq!(def.partitions[1].label, Some(format!("tessera-os_{v}")));
    let path = with_partitions(dir.path(), &format!("{ESP}Label = \"esp-%H\"\n"));
    let e = ImageDefinition::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("key `partition[0].Label`: `%H` names something of the machine"),
        "{e}"
    );
}

#[test]
fn verity_block_sizes_come_from_the_hash_partition() {
    let dir = tempfile::tempdir().unwrap();
    let usr = "[[partition]]\nType = \"usr\"\nVerity = \"data\"\nVerityMatchKey = \"usr\"\n";
    let hash =
        "[[partition]]\nType = \"usr-verity\"\nVerity = \"hash\"\nVerityMatchKey = \"usr\"\n";
    let path = with_partitions(dir.path(), &format!("{ESP}{usr}{hash}"));
    assert_eq!(
        ImageDefinition::load(&path).unwrap().verity_block_sizes(),
        (4096, 4096)
    );
    let path = with_partitions(
        dir.path(),
        &format!(
            "{ESP}{usr}{hash}VerityDataBlockSizeBytes = 512\nVerityHashBlockSizeBytes = \"1K\"\n"
        ),
    );
    assert_eq!(
        ImageDefinition::load(&path).unwrap().verity_block_sizes(),
        (512, 1024)
    );
    for (bad, why) in [
        (
            "VerityDataBlockSizeBytes = 3000",
            "not a power of two from 512 to 4096",
        ),
        (
            "VerityHashBlockSizeBytes = \"8K\"",
            "not a power of two from 512 to 4096",
        ),
    ] {
        let path = with_partitions(dir.path(), &format!("{ESP}{usr}{hash}{bad}\n"));
        let e = ImageDefinition::load(&path).unwrap_err().to_string();
        assert!(
            e.contains(why) && e.contains("key `partition[2].Verity"),
            "{bad}: {e}"
        );
    }
    let path = with_partitions(
        dir.path(),
        &format!("{ESP}{usr}VerityDataBlockSizeBytes = 512\n{hash}"),
    );
    let e = ImageDefinition::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("key `partition[1].VerityDataBlockSizeBytes`: only applies to the Verity=hash"),
        "{e}"
    );
}

#[test]
fn usr_copy_files_pick_from_the_images_usr() {
    let dir = tempfile::tempdir().unwrap();
    let with_copy = |copy: &str| {
        with_partitions(
            dir.path(),
            &format!("{ESP}[[partition]]\nType = \"usr\"\nCopyFiles = [{copy}]\n"),
        )
    };
    let def = ImageDefinition::load(&with_copy("\"/usr:/\"")).unwrap();
    let layers = def.usr_layers();
    assert_eq!(layers[0].target, Path::new(""));
    assert_eq!(layers[0].source, def.usr.tree.join(""));
    let def = ImageDefinition::load(&with_copy("\"/usr/lib:/lib\", \"/usr/share/doc\"")).unwrap();
    let layers = def.usr_layers();
    assert_eq!(layers[0].source, def.usr.tree.join("lib"));
    assert_eq!(layers[0].target, Path::new("lib"));
    assert_eq!(layers[1].source, def.usr.tree.join("share/doc"));
    assert_eq!(layers[1].target, Path::new("usr/share/doc"));
    // The shipped extra trees come after.
    assert_eq!(layers.len(), 2 + def.usr.extra_trees.len());
    for bad in ["\"/etc:/etc\"", "\"/usr/../etc:/x\"", "\"/usr/lib:lib\""] {
        let e = ImageDefinition::load(&with_copy(bad))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `partition[1].CopyFiles`"), "{bad}: {e}");
    }
}
