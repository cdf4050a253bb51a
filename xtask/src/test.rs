//! `cargo xtask test`: deps, fmt, clippy, then the whole suite, timing each phase.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::deps;

pub fn run(extra: &[String]) -> anyhow::Result<()> {
    let mut phases: Vec<(&str, Duration)> = Vec::new();
    let cargo = env!("CARGO");

    let t = Instant::now();
    // Everything but the peer compositors, which only the benchmark runs.
    deps::ensure_groups(&["build", "rig", "clients"], false)?;
    phase_done(&mut phases, "deps", t);

    let t = Instant::now();
    check(
        Command::new(cargo).args(["fmt", "--all", "--", "--check"]),
        "cargo fmt --check",
    )?;
    phase_done(&mut phases, "fmt", t);

    let t = Instant::now();
    check(
        Command::new(cargo).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        "cargo clippy",
    )?;
    phase_done(&mut phases, "clippy", t);

    // The VM tests boot the cached Debian kernel; fetching it up front keeps the
    // download out of the per-test timeouts.
    let t = Instant::now();
    let art = tessera_rig::Artifacts::ensure().context("fetching VM artifacts")?;
    println!("xtask: artifacts ready in {}", art.cache.display());
    phase_done(&mut phases, "artifacts", t);

    let t = Instant::now();
    let nextest = Command::new(cargo)
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd = Command::new(cargo);
    if nextest {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(extra);
    // A failing test's panic message then ends its output: a CI log that keeps only
    // the tail of a failure shows why it failed, not the last frames of a backtrace.
    // `TESSERA_TEST_BACKTRACE=1` brings the backtraces back.
    let backtrace = std::env::var("TESSERA_TEST_BACKTRACE").unwrap_or_else(|_| "0".into());
    cmd.env("RUST_BACKTRACE", backtrace);
    let (ok, summary) = run_and_summarise(cmd, nextest)?;
    phase_done(&mut phases, "tests", t);

    println!("xtask: phase times:");
    for (name, took) in &phases {
        println!("xtask:   {name:<10} {:>7.1}s", took.as_secs_f64());
    }
    // The runner's summary stays the last line, so CI and humans read it first.
    println!("{summary}");
    if !ok {
        bail!("tests failed");
    }
    Ok(())
}

fn phase_done(phases: &mut Vec<(&'static str, Duration)>, name: &'static str, start: Instant) {
    let took = start.elapsed();
    println!("xtask: {name} done in {:.1}s", took.as_secs_f64());
    phases.push((name, took));
}

fn check(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    println!("xtask: {what}");
    let status = cmd.status().with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Runs the test runner with its output passed through, and returns whether it passed
/// and its summary line (nextest's `Summary` line, or cargo test's totals).
fn run_and_summarise(cmd: Command, nextest: bool) -> anyhow::Result<(bool, String)> {
    println!("xtask: {cmd:?}");
    // Merge stderr into stdout so the summary can be read from one stream.
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("exec \"$@\" 2>&1")
        .arg("sh")
        .arg(cmd.get_program());
    sh.args(cmd.get_args()).stdout(Stdio::piped());
    let mut child = sh.spawn().context("starting the test runner")?;
    let stdout = child.stdout.take().context("runner stdout")?;
    let mut summary = None;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if nextest && line.trim_start().starts_with("Summary [") {
            summary = Some(line.trim().to_owned());
        }
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split([';', '.']) {
                let mut words = part.split_whitespace();
                if let (Some(n), Some(what)) = (words.next(), words.next()) {
                    let n: u64 = n.parse().unwrap_or(0);
                    match what {
                        "passed" => passed += n,
                        "failed" => failed += n,
                        "ignored" => ignored += n,
                        _ => {}
                    }
                }
            }
        }
    }
    let status = child.wait()?;
    let summary =
        summary.unwrap_or_else(|| format!("{passed} passed, {failed} failed, {ignored} skipped"));
    Ok((status.success(), summary))
}
