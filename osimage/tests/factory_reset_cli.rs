//! `osimage factory-reset` on a directory standing in for efivarfs.

use std::process::Command;

fn osimage(efivars: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_osimage"))
        .arg("factory-reset")
        .arg("--efivars")
        .arg(efivars)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn request_dry_run_cancel_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let var = dir
        .path()
        .join("FactoryReset-8cf2644b-4b0b-428f-9387-6d876050dc67");

    let out = osimage(dir.path(), &["request", "--dry-run"]);
    assert!(out.status.success());
    assert!(!var.exists(), "--dry-run wrote the variable");

    assert!(osimage(dir.path(), &["request"]).status.success());
    assert_eq!(
        std::fs::read(&var).unwrap(),
        [7, 0, 0, 0, b'y', 0, b'e', 0, b's', 0, 0, 0]
    );
    let out = osimage(dir.path(), &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["requested"], true);

    assert!(osimage(dir.path(), &["cancel"]).status.success());
    assert!(!var.exists());
    let out = osimage(dir.path(), &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["requested"], false);
}

#[test]
fn without_efivarfs_a_request_exits_3_and_says_why() {
    let out = osimage(
        std::path::Path::new("/nonexistent/efivars"),
        &["request", "--esp", "/nonexistent/esp"],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("systemd.factory_reset=yes"));
}
