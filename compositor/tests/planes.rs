//! The plane policy and linux-dmabuf against the real binary and real clients:
//! `--plane-table` simulates a device's planes on headless, `tessera msg planes`
//! reports what each element of weston-simple-shm's frames took, and Debian's
//! wayland-info gets the default feedback.

mod common;

use std::process::Command;

use common::{Session, poll};
use tessera::ipc::proto::Request;
use tessera::render::planes::{Composited, Placement};
use tessera::scanout::PlanesReport;

fn planes(session: &Session) -> PlanesReport {
    let r = session.msg(Request::Planes);
    assert!(r.ok, "{r:?}");
    serde_json::from_value(r.data).unwrap()
}

fn msg_planes(session: &Session, json: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.arg("msg");
    if json {
        cmd.arg("--json");
    }
    let out = cmd
        .arg("planes")
        .env("TESSERA_SOCKET", &session.ipc)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn msg_planes_shows_where_a_real_clients_frames_went() {
    let mut session = Session::start_with("pixman", "1280x720@60", &["--plane-table", "intel"]);
    session.spawn("weston-simple-shm", &[]);
    let report = poll("a frame with weston-simple-shm in it", || {
        let r = planes(&session);
        let has_shm = r
            .outputs
            .first()?
            .last_frame
            .iter()
            .any(|e| e.buffer == "shm");
        has_shm.then_some(r)
    });
    assert_eq!(report.source, "simulated:intel");
    assert_eq!(report.driver, "i915");
    assert_eq!(report.planes.len(), 6, "{:?}", report.planes);
    let out = &report.outputs[0];
    assert_eq!(out.output, "Virtual-1");
    let shm = out.last_frame.iter().find(|e| e.buffer == "shm").unwrap();
    // An shm buffer cannot be scanned out: it is composited, and counted so.
    assert_eq!(shm.placement, Placement::Composited(Composited::NotDmabuf));
    assert!(out.counters.frames > 0 && out.counters.composited > 0);
    assert!(out.counters.reasons.get("not-dmabuf").copied().unwrap_or(0) > 0);
    // Every frame is timed; a frame on a 1280x720 output takes well under a
    // second even on llvmpipe under load, and p50 <= p99 whatever the load.
    let t = out.render_time.expect("render time of a rendered output");
    assert!(
        t.frames > 0 && t.window > 0 && t.window as u64 <= t.frames,
        "{t:?}"
    );
    assert!(
        0.0 < t.p50_us && t.p50_us <= t.p99_us && t.p99_us < 1e6,
        "{t:?}"
    );
    // The first frame is reported apart, and kept out of the window once
    // there are others.
    assert!(0.0 < t.first_us && t.first_us < 1e7, "{t:?}");
    assert!(t.frames == 1 || (t.window as u64) < t.frames, "{t:?}");

    let text = msg_planes(&session, false);
    assert!(
        text.contains("planes: simulated:intel (primary 31, overlay 40"),
        "{text}"
    );
    assert!(text.contains("Virtual-1: "), "{text}");
    assert!(text.contains("composited (not-dmabuf)"), "{text}");
    assert!(text.contains("  render time over the last "), "{text}");
    let json: serde_json::Value = serde_json::from_str(&msg_planes(&session, true)).unwrap();
    assert_eq!(json["data"]["source"], "simulated:intel");
}

#[test]
fn an_unknown_plane_table_is_a_config_error_naming_the_known_ones() {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "--backend",
            "headless",
            "--plane-table",
            "voodoo2",
            "--exit-after",
            "1",
        ])
        .env("XDG_RUNTIME_DIR", tempfile::tempdir().unwrap().path())
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(tessera::EXIT_CONFIG));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown plane table `voodoo2`"), "{err}");
    assert!(err.contains("intel, amd"), "{err}");
}

#[test]
fn wayland_info_gets_the_default_feedback() {
    let session = Session::start("pixman", "1280x720@60");
    // wayland-info prints formats only for a device it can open; headless
    // Pixman has none (main_device 0), so read the protocol exchange itself.
    let out = session
        .client("wayland-info", &[])
        .env("WAYLAND_DEBUG", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" zwp_linux_dmabuf_feedback_v1@") && !l.contains("->"))
        .collect();
    let want = [
        ".main_device(array[8])",
        ".format_table(fd ",
        ".tranche_target_device(array[8])",
        ".tranche_flags(0)",
        ".tranche_formats(array[",
        ".tranche_done()",
        ".done()",
    ];
    for (line, w) in lines.iter().zip(want) {
        assert!(line.contains(w), "expected {w} in {line}\n{log}");
    }
    assert_eq!(lines.len(), want.len(), "one render tranche only:\n{log}");
    // 16 bytes per format in the table, 2 per index in the tranche: all of them.
    let table: usize = lines[1]
        .split(", ")
        .nth(1)
        .and_then(|s| s.trim_end_matches(')').parse().ok())
        .unwrap();
    let indices: usize = lines[4]
        .split("array[")
        .nth(1)
        .and_then(|s| s.trim_end_matches("])").parse().ok())
        .unwrap();
    assert!(table >= 16 && table.is_multiple_of(16), "{}", lines[1]);
    assert_eq!(indices, table / 16 * 2);
}
