//! Real Wayland clients from Debian against the headless compositor.

mod common;

use std::time::Duration;

use common::{Session, differing, pixel, poll};
use tessera::ipc::proto::Request;

const BACKGROUND: [u8; 4] = [0x20, 0x24, 0x2b, 0xff];

#[test]
fn wayland_info_lists_every_advertised_global() {
    let session = Session::start("pixman", "1280x720");
    let out = session.client("wayland-info", &[]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let advertised = common::wayland_info_interfaces(&out.stdout);
    for expected in [
        "wl_compositor",
        "wl_subcompositor",
        "wl_shm",
        "wl_seat",
        "wl_output",
        "wl_data_device_manager",
        "xdg_wm_base",
        "zxdg_output_manager_v1",
        "zxdg_decoration_manager_v1",
        "xdg_activation_v1",
        "zwlr_layer_shell_v1",
        "ext_session_lock_manager_v1",
        "wp_viewporter",
        "wp_fractional_scale_manager_v1",
        "wp_presentation",
        "wp_cursor_shape_manager_v1",
        "zwp_primary_selection_device_manager_v1",
        "zwp_idle_inhibit_manager_v1",
        "ext_idle_notifier_v1",
        "wp_single_pixel_buffer_manager_v1",
        "wp_security_context_manager_v1",
    ] {
        assert!(
            advertised.iter().any(|a| a == expected),
            "{expected} missing from {advertised:?}"
        );
    }
    // Every global the compositor offers is classified in the privilege table.
    for global in &advertised {
        assert!(
            tessera_protocols::GLOBALS
                .iter()
                .any(|g| g.interface == global.as_str()),
            "{global} is advertised but has no privilege class"
        );
    }
    // The output is described as configured.
    assert!(text.contains("width: 1280 px, height: 720 px"), "{text}");
}

fn simple_shm_renders(renderer: &str) -> tessera::backend::Capture {
    let mut session = Session::start(renderer, "640x480");
    let dir = tempfile::tempdir().unwrap();
    session.spawn("weston-simple-shm", &[]);
    session.wait_windows("simple-shm to map", |w| {
        w.iter().any(|w| {
            w.app_id.as_deref() == Some("org.freedesktop.weston.simple-shm") && w.geometry.is_some()
        })
    });
    let w = session.windows();
    let geo = w[0].geometry.unwrap();
    assert_eq!(&geo[2..], &[250, 250], "simple-shm draws 250x250");
    assert!(w[0].focused && w[0].maximized, "{w:?}");
    // simple-shm animates; wait for a frame that is not the plain background.
    let shot = poll("simple-shm pixels", || {
        std::thread::sleep(Duration::from_millis(100));
        let s = session.screenshot(dir.path(), "shm.png");
        (pixel(&s, 125, 125) != BACKGROUND).then_some(s)
    });
    // Its 250x250 window sits at the top left; outside it is the background.
    assert_eq!(pixel(&shot, 400, 300), BACKGROUND);
    assert_eq!(pixel(&shot, 639, 479), BACKGROUND);
    // The window's corner: simple-shm paints a white-ish border frame of its own.
    let corner = pixel(&shot, 2, 2);
    assert!(
        corner[0] > 200 && corner[1] > 200 && corner[2] > 200,
        "{corner:?}"
    );
    assert!(session.alive());
    shot
}

#[test]
fn weston_simple_shm_renders_with_pixman() {
    simple_shm_renders("pixman");
}

#[test]
fn weston_simple_shm_renders_with_gles_on_llvmpipe() {
    simple_shm_renders("gles");
}

#[test]
fn weston_simple_egl_renders_on_llvmpipe() {
    let mut session = Session::start("gles", "640x480");
    let dir = tempfile::tempdir().unwrap();
    session.spawn("weston-simple-egl", &[]);
    session.wait_windows("simple-egl to map", |w| {
        w.iter().any(|w| w.geometry.is_some())
    });
    let w = session.windows();
    let geo = w[0].geometry.unwrap();
    // simple-egl honours the maximize configure.
    assert_eq!(geo, [0, 0, 640, 480], "{w:?}");
    let shot = poll("a rendered triangle", || {
        std::thread::sleep(Duration::from_millis(200));
        let s = session.screenshot(dir.path(), "egl.png");
        // The spinning triangle puts strongly coloured pixels around the centre.
        let coloured = (200..280)
            .flat_map(|y| (280..360).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let p = pixel(&s, x, y);
                p[0].max(p[1]).max(p[2]) > 150
            })
            .count();
        (coloured > 200).then_some(s)
    });
    assert_eq!(shot.width, 640);
}

#[test]
fn pixman_and_gles_agree_on_the_same_client() {
    // simple-shm animates by time, so compare the static parts: the border and
    // the background, where both renderers must give the same pixels.
    let a = simple_shm_renders("pixman");
    let b = simple_shm_renders("gles");
    assert_eq!(
        differing(&a, &b, 250, 0, 390, 480, 2),
        0,
        "background differs"
    );
    assert_eq!(
        differing(&a, &b, 0, 250, 250, 230, 2),
        0,
        "below the window differs"
    );
    assert_eq!(
        differing(&a, &b, 0, 0, 250, 10, 8),
        0,
        "the window's top border differs"
    );
}

#[test]
fn foot_shows_typed_text() {
    let session = Session::start("pixman", "800x600");
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut foot = session.client("foot", &["--override", "shell=/bin/sh"]);
    foot.env("HOME", home.path())
        .env("ENV", "/dev/null")
        .env("PS1", "$ ")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = foot.spawn().unwrap();
    session.wait_windows("foot to map", |w| {
        w.iter()
            .any(|w| w.app_id.as_deref() == Some("foot") && w.geometry.is_some() && w.focused)
    });
    let w = session.windows();
    assert_eq!(
        w[0].geometry,
        Some([0, 0, 800, 600]),
        "foot opens maximized: {w:?}"
    );
    // Wait for the prompt to be drawn, then capture the lines below it.
    let before = poll("the prompt", || {
        std::thread::sleep(Duration::from_millis(200));
        let s = session.screenshot(dir.path(), "before.png");
        (differing(&s, &blank_like(&s, pixel(&s, 400, 300)), 0, 0, 200, 16, 0) > 0).then_some(s)
    });
    let r = session.msg(Request::Type {
        text: "echo tessera-ok\n".into(),
    });
    assert!(r.ok, "{r:?}");
    // The command line and its output add text to the first three rows.
    let after = poll("typed text", || {
        std::thread::sleep(Duration::from_millis(200));
        let s = session.screenshot(dir.path(), "after.png");
        (differing(&before, &s, 0, 8, 300, 24, 16) > 40).then_some(s)
    });
    // Below the output, the terminal is still empty.
    assert_eq!(differing(&before, &after, 0, 200, 800, 400, 0), 0);
    // OCR-free proof that the output line reads `tessera-ok`: its pixels equal the
    // `tessera-ok` typed on the command line above it, shifted by `$ echo `.
    let bg = pixel(&after, 700, 500);
    let bands = text_bands(&after, bg);
    assert!(bands.len() >= 3, "prompt, output and new prompt: {bands:?}");
    let (cmd, out) = (bands[0], bands[1]);
    let h = (cmd.1 - cmd.0).min(out.1 - out.0);
    let out_width = (0..after.width)
        .rev()
        .find(|&x| (out.0..out.0 + h).any(|y| pixel(&after, x, y) != bg))
        .unwrap()
        + 1;
    let matches = (1..200).any(|dx| {
        (0..h).all(|dy| {
            (0..out_width)
                .all(|x| pixel(&after, x, out.0 + dy) == pixel(&after, x + dx, cmd.0 + dy))
        })
    });
    assert!(matches, "the output line is not the echoed word");
    let _ = child.kill();
    let _ = child.wait();
}

fn blank_like(c: &tessera::backend::Capture, colour: [u8; 4]) -> tessera::backend::Capture {
    tessera::backend::Capture {
        width: c.width,
        height: c.height,
        rgba: colour.iter().copied().cycle().take(c.rgba.len()).collect(),
    }
}

/// Row ranges that hold any non-background pixel.
fn text_bands(c: &tessera::backend::Capture, bg: [u8; 4]) -> Vec<(u32, u32)> {
    let mut bands = Vec::new();
    let mut start = None;
    for y in 0..c.height {
        let inked = (0..c.width).any(|x| pixel(c, x, y) != bg);
        match (inked, start) {
            (true, None) => start = Some(y),
            (false, Some(s)) => {
                bands.push((s, y));
                start = None;
            }
            _ => {}
        }
    }
    bands
}

/// llvmpipe rasterizes on as many threads as `renderer.llvmpipe_threads` says (0:
/// none, on the compositor's own thread), and the clients the session starts do
/// not inherit the variable that carries it to Mesa.
#[test]
fn llvmpipe_raster_threads_follow_the_config_and_stay_out_of_clients() {
    for threads in [0usize, 2] {
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join("client-env");
        let config = dir.path().join("compositor.toml");
        std::fs::write(
            &config,
            format!(
                "[renderer]\nllvmpipe_threads = {threads}\n[binds]\n\"Super+e\" = \"spawn env > {}\"\n",
                env_file.display()
            ),
        )
        .unwrap();
        let session =
            Session::start_with("gles", "640x480", &["--config", config.to_str().unwrap()]);
        // A screenshot is read back from GL, so the driver is loaded and has drawn.
        session.screenshot(dir.path(), "first");
        let raster: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", session.pid()))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
            .map(|c| c.trim().to_owned())
            .filter(|c| c.starts_with("llvmpipe-"))
            .collect();
        assert_eq!(raster.len(), threads, "{threads} configured: {raster:?}");
        assert!(
            session
                .msg(Request::Key {
                    combo: "Super+e".into()
                })
                .ok
        );
        let env = poll("the spawned client's environment", || {
            std::fs::read_to_string(&env_file)
                .ok()
                .filter(|e| e.contains("WAYLAND_DISPLAY="))
        });
        assert!(!env.contains(tessera::render::llvmpipe::VAR), "{env}");
    }
}
