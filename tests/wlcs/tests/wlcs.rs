//! Runs Debian's WLCS 1.5.0 against Tessera, suite by suite (a crash in one
//! suite loses only that suite), and compares with `baseline.json`: a test the
//! baseline records as passing must still pass. New passes are printed so the
//! baseline can be raised with `TESSERA_WLCS_RECORD=1`.
//!
//! Left out: touch tests (Tessera offers no touch device to WLCS yet; the old
//! runner dereferences the missing one and crashes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

const RUNNER: &str = "/usr/lib/x86_64-linux-gnu/wlcs/wlcs";
const EXCLUDE: &str = "*ouch*";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SuiteResult {
    passed: Vec<String>,
    failed: Vec<String>,
    skipped: Vec<String>,
    /// The runner died (signal or timeout) before the suite finished.
    crashed: bool,
}

/// The cdylib cargo built beside this test: test builds leave it in
/// `target/<profile>/deps/`; `cargo build` also copies it one level up.
fn integration() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let here = deps.join("libtessera_wlcs.so");
    if here.exists() {
        return here;
    }
    deps.parent().unwrap().join("libtessera_wlcs.so")
}

fn suites(so: &Path) -> Vec<String> {
    let out = Command::new(RUNNER)
        .arg(so)
        .arg("--gtest_list_tests")
        .output()
        .expect("Debian's wlcs runner (apt-get install wlcs)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(' ') && l.ends_with('.'))
        .map(|l| l.trim_end_matches('.').to_owned())
        .collect()
}

/// The test name after a gtest status tag, without the timing or, for a
/// parametrised test, the `, where GetParam() = ...` description.
fn name_after(line: &str, tag: &str) -> Option<String> {
    let rest = line.strip_prefix(tag)?.trim();
    let name = rest.split([' ', ',']).next()?.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

fn run_suite(so: &Path, suite: &str) -> SuiteResult {
    let mut child = Command::new("timeout")
        .args(["--kill-after=5", "180", RUNNER])
        .arg(so)
        .arg(format!("--gtest_filter={suite}.*:-{EXCLUDE}"))
        .env_remove("WAYLAND_DISPLAY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let status = child.wait().unwrap();
    let mut r = SuiteResult::default();
    for line in stdout.lines() {
        if let Some(n) = name_after(line, "[       OK ]") {
            r.passed.push(n);
        } else if let Some(n) = name_after(line, "[  FAILED  ]") {
            // The summary at the end repeats failures without a timing.
            if line.contains(" ms)") {
                r.failed.push(n);
            }
        } else if let Some(n) = name_after(line, "[  SKIPPED ]") {
            // Tests skipped for a missing extension appear in the summary only.
            if n.contains('.') && !r.skipped.contains(&n) {
                r.skipped.push(n);
            }
        }
    }
    // gtest exits 1 when a test failed; anything else is a crash or a timeout.
    r.crashed = !matches!(status.code(), Some(0 | 1));
    r
}

fn baseline_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("baseline.json")
}

#[test]
fn wlcs_passes_never_turn_into_failures() {
    let so = integration();
    assert!(so.exists(), "{} was not built", so.display());
    let suites = suites(&so);
    assert!(suites.len() > 40, "the runner lists its suites: {suites:?}");
    let mut results: BTreeMap<String, SuiteResult> = BTreeMap::new();
    for suite in &suites {
        let r = run_suite(&so, suite);
        println!(
            "wlcs: {suite}: {} passed, {} failed, {} skipped{}",
            r.passed.len(),
            r.failed.len(),
            r.skipped.len(),
            if r.crashed { ", crashed" } else { "" }
        );
        results.insert(suite.clone(), r);
        std::thread::sleep(Duration::from_millis(10));
    }
    let total = |f: fn(&SuiteResult) -> usize| results.values().map(f).sum::<usize>();
    println!(
        "wlcs: total {} passed, {} failed, {} skipped",
        total(|r| r.passed.len()),
        total(|r| r.failed.len()),
        total(|r| r.skipped.len())
    );
    if std::env::var_os("TESSERA_WLCS_RECORD").is_some() {
        let json = serde_json::to_string_pretty(&results).unwrap();
        std::fs::write(baseline_path(), json + "\n").unwrap();
        println!("wlcs: baseline written to {}", baseline_path().display());
        return;
    }
    let baseline: BTreeMap<String, SuiteResult> =
        serde_json::from_str(&std::fs::read_to_string(baseline_path()).unwrap()).unwrap();
    let mut regressions = Vec::new();
    let mut gains = Vec::new();
    for (suite, was) in &baseline {
        let now = results.get(suite).cloned().unwrap_or_default();
        for test in &was.passed {
            if !now.passed.contains(test) {
                regressions.push(format!("{suite}: {test}"));
            }
        }
        gains.extend(
            now.passed
                .iter()
                .filter(|t| !was.passed.contains(t))
                .map(|t| format!("{suite}: {t}")),
        );
    }
    if !gains.is_empty() {
        println!("wlcs: new passes (raise the baseline): {gains:#?}");
    }
    assert!(
        regressions.is_empty(),
        "recorded WLCS passes now fail: {regressions:#?}"
    );
}
