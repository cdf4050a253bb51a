//! The nested backend in a real parent session: a Tessera window (winit, GLES on
//! llvmpipe through Mesa's Wayland EGL) inside a headless Tessera, with foot
//! inside it, and the parent's keyboard and pointer driving the nested session.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Session, differing, pixel, poll};
use tessera::backend::Capture;
use tessera::ipc::proto::{Request, Response};

/// The nested session's background, so its window is told apart from the parent's.
const INNER: [u8; 4] = [0xc0, 0x30, 0x10, 0xff];
/// foot's background inside it.
const FOOT: [u8; 4] = [0x10, 0x30, 0x50, 0xff];

struct Inner {
    child: Child,
    ipc: PathBuf,
}

impl Inner {
    fn msg(&self, request: Request) -> Response {
        tessera::ipc::client::send(&self.ipc, &request).expect("the nested session answers")
    }

    fn screenshot(&self, dir: &std::path::Path, name: &str, cursor: bool) -> Capture {
        let path = dir.join(name);
        let r = self.msg(Request::Screenshot {
            output: None,
            path: path.to_string_lossy().into_owned(),
            cursor,
        });
        assert!(r.ok, "{r:?}");
        tessera::screenshot::read_png(&path).unwrap()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn share_of(c: &Capture, colour: [u8; 4]) -> f64 {
    let mut n = 0u64;
    for y in 0..c.height {
        for x in 0..c.width {
            if pixel(c, x, y)
                .iter()
                .zip(colour)
                .all(|(a, b)| a.abs_diff(b) <= 2)
            {
                n += 1;
            }
        }
    }
    n as f64 / f64::from(c.width * c.height)
}

#[test]
fn a_nested_session_shows_in_its_parents_window_and_takes_its_input() {
    let outer = Session::start("pixman", "1280x800");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("inner.toml");
    std::fs::write(&config, "[renderer]\nbackground = \"#c03010\"\n").unwrap();
    let mut child = outer
        .client(
            env!("CARGO_BIN_EXE_tessera"),
            &[
                "--backend",
                "nested",
                "--socket",
                "wayland-inner",
                "--no-autostart",
            ],
        )
        .arg("--config")
        .arg(&config)
        .env("TESSERA_NO_EXPORT", "1")
        .env("RUST_LOG", "warn")
        // Mesa draws with llvmpipe and hands the parent wl_shm buffers.
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("tessera --backend nested starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ipc = loop {
        let line = lines
            .next()
            .expect("the nested session prints its sockets (or it failed to open a window)")
            .unwrap();
        if let Some(v) = line.strip_prefix("TESSERA_SOCKET=") {
            break PathBuf::from(v);
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let inner = Inner { child, ipc };

    let version = inner.msg(Request::Version);
    assert_eq!(version.data["backend"], "nested", "{version:?}");
    assert_eq!(version.data["renderer"], "gles", "{version:?}");

    // The parent maps the window maximized (its policy), and it shows the nested
    // session's background.
    outer.wait_windows("the nested window", |w| {
        w.iter()
            .any(|w| w.title.as_deref() == Some("Tessera (nested)") && w.maximized)
    });
    poll("the nested background in the parent", || {
        let shot = outer.screenshot(dir.path(), "outer-bg.png");
        (share_of(&shot, INNER) > 0.95).then_some(())
    });

    // A real client inside the nested session: foot, with a background of its own.
    let home = tempfile::tempdir().unwrap();
    let mut foot = outer.client(
        "foot",
        &[
            "--override",
            "shell=/bin/sh",
            "--override",
            "colors.background=103050",
        ],
    );
    foot.env("WAYLAND_DISPLAY", "wayland-inner")
        .env("HOME", home.path())
        .env("ENV", "/dev/null")
        .env("PS1", "$ ")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut foot = foot.spawn().expect("foot starts");
    poll("foot focused in the nested session", || {
        let r = inner.msg(Request::Windows);
        let windows: Vec<tessera::ipc::proto::WindowInfo> = serde_json::from_value(r.data).unwrap();
        windows
            .iter()
            .any(|w| w.app_id.as_deref() == Some("foot") && w.focused)
            .then_some(())
    });
    // What the nested session shows is what the parent shows in its window, pixel
    // for pixel and the right way up: the window is maximized at the origin of an
    // output of the same size, and foot's prompt is in its top left corner.
    let text_rows = |c: &Capture| -> Vec<u32> {
        (0..c.height)
            .filter(|&y| (0..c.width).any(|x| pixel(c, x, y) != FOOT && pixel(c, x, y) != INNER))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let inside = inner.screenshot(dir.path(), "inner.png", true);
        let outside = outer.screenshot(dir.path(), "outer.png");
        let differ = differing(&inside, &outside, 0, 0, 1280, 800, 4);
        let rows = text_rows(&outside);
        let (foot_share, size) = (share_of(&outside, FOOT), (inside.width, inside.height));
        if foot_share > 0.9 && differ == 0 && !rows.is_empty() && rows.iter().all(|&y| y < 40) {
            assert_eq!(size, (1280, 800));
            break;
        }
        let seen = format!(
            "{foot_share:.3} of the parent is foot's background, {differ} pixels differ \
             from the nested frame ({}x{}), text in rows {:?}..{:?}",
            size.0,
            size.1,
            rows.first(),
            rows.last()
        );
        assert!(
            Instant::now() < deadline,
            "foot is not shown alike in both: {seen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Keys typed into the parent's focused window reach foot inside.
    assert!(
        outer
            .msg(Request::Type {
                text: "echo nested-ok\n".into()
            })
            .ok
    );
    poll("the typed line and its output in foot", || {
        let shot = inner.screenshot(dir.path(), "typed.png", false);
        let rows = text_rows(&shot);
        (rows.iter().any(|&y| y > 40) && rows.iter().all(|&y| y < 120)).then_some(())
    });

    // The parent's pointer over the window is the nested session's pointer.
    assert!(outer.msg(Request::PointerMove { x: 900.0, y: 600.0 }).ok);
    poll("the nested pointer at the parent's", || {
        let with = inner.screenshot(dir.path(), "inner-cursor.png", true);
        let without = inner.screenshot(dir.path(), "inner-plain.png", false);
        (differing(&with, &without, 880, 580, 60, 60, 8) > 20
            && differing(&with, &without, 0, 0, 800, 500, 8) == 0)
            .then_some(())
    });

    let _ = foot.kill();
    let _ = foot.wait();
}
