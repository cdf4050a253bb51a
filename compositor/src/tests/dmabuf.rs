//! linux-dmabuf: default and per-surface feedback against simulated plane tables,
//! every malformed-params error, and the single-pixel background seen through the
//! plane counters.

use wayland_client::Proxy;
use wayland_client::protocol::wl_surface;
use wayland_protocols::wp::linux_dmabuf::zv1::client::{
    zwp_linux_buffer_params_v1::{Error as ParamsError, Flags, ZwpLinuxBufferParamsV1},
    zwp_linux_dmabuf_feedback_v1::ZwpLinuxDmabufFeedbackV1,
    zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1,
};
use wayland_protocols_wlr::layer_shell::v1::client::{zwlr_layer_shell_v1, zwlr_layer_surface_v1};

use super::client::{TestClient, Toplevel};
use super::dmabuf_client::{Fmt, SeenFeedback, add_plane, memfd};
use super::fixture::{Fixture, pixel};
use crate::render::planes::{MOD_LINEAR, Placement, PlaneKind, fourcc};

const XR24: u32 = fourcc(b"XR24");
const AR24: u32 = fourcc(b"AR24");
const NV12: u32 = fourcc(b"NV12");
const I915_X_TILED: u64 = 0x0100_0000_0000_0001;

fn render_formats(fx: &Fixture) -> Vec<Fmt> {
    let set = &fx.state.dmabuf.render_formats;
    set.iter().map(|f| (f.fourcc, f.modifier)).collect()
}

/// The formats of the first plane of `kind` that the renderer can also import.
fn plane_formats(fx: &Fixture, kind: PlaneKind) -> Vec<Fmt> {
    let plane = fx.state.scanout.caps.planes.iter().find(|p| p.kind == kind);
    let render = &fx.state.dmabuf.render_formats;
    plane
        .map(|p| p.formats.intersection(render))
        .into_iter()
        .flatten()
        .map(|f| (f.fourcc, f.modifier))
        .collect()
}

/// (flags, sorted formats) per tranche.
fn summary(f: &SeenFeedback) -> Summary {
    f.tranches
        .iter()
        .map(|t| {
            let mut formats = t.formats.clone();
            formats.sort();
            (t.flags, formats)
        })
        .collect()
}

#[test]
fn default_feedback_is_the_render_tranche_on_the_main_device() {
    let mut fx = Fixture::new();
    let (mut c, _) = fx.add_client();
    let dmabuf = c.bind_dmabuf();
    let fb = dmabuf.get_default_feedback(&c.qh(), ());
    fx.roundtrip(&mut c);
    let seen = c.data.dmabuf.latest(&fb).expect("default feedback").clone();
    let device = fx.state.dmabuf.main_device.to_ne_bytes().to_vec();
    assert_eq!(seen.main_device, device);
    assert_eq!(summary(&seen), vec![(0, render_formats(&fx))]);
    assert_eq!(seen.tranches[0].device, device);
    let formats = &seen.tranches[0].formats;
    assert!(formats.contains(&(XR24, MOD_LINEAR)) && formats.contains(&(AR24, MOD_LINEAR)));
}

/// Renders a frame and returns the newest feedback the surface got.
fn feedback_after_frame(
    fx: &mut Fixture,
    c: &mut TestClient,
    fb: &ZwpLinuxDmabufFeedbackV1,
) -> SeenFeedback {
    fx.roundtrip(c);
    fx.screenshot();
    fx.roundtrip(c);
    c.data.dmabuf.latest(fb).cloned().expect("surface feedback")
}

fn attach_opaque(fx: &mut Fixture, c: &mut TestClient, surface: &wl_surface::WlSurface) {
    fx.roundtrip(c);
    c.set_opaque(surface);
    c.attach_configured(surface, (400, 300), 0xff33_6699);
}

/// A mapped, opaque, floating 400x300 window that asked for surface feedback.
fn floating_with_feedback(
    fx: &mut Fixture,
    c: &mut TestClient,
    app_id: &str,
) -> (Toplevel, ZwpLinuxDmabufFeedbackV1) {
    let dmabuf = c.bind_dmabuf();
    let t = c.create_toplevel(app_id);
    t.toplevel.set_min_size(400, 300);
    t.toplevel.set_max_size(400, 300);
    t.surface.commit();
    fx.roundtrip(c);
    let fb = dmabuf.get_surface_feedback(&t.surface, &c.qh(), ());
    attach_opaque(fx, c, &t.surface);
    (t, fb)
}

/// Feedback of one opaque window: floating, fullscreen, fullscreen with
/// `[scanout] direct = false`, floating again.
type Summary = Vec<(u32, Vec<Fmt>)>;

fn fullscreen_round_trip(table: &str) -> (Fixture, [Summary; 4], Vec<Summary>) {
    let mut fx = Fixture::new();
    fx.state.simulate_planes(table).unwrap();
    let (mut c, _) = fx.add_client();
    let (t, fb) = floating_with_feedback(&mut fx, &mut c, "feedback");
    let floating = summary(&feedback_after_frame(&mut fx, &mut c, &fb));

    t.toplevel.set_fullscreen(None);
    attach_opaque(&mut fx, &mut c, &t.surface);
    let fullscreen = summary(&feedback_after_frame(&mut fx, &mut c, &fb));

    fx.state.scanout.switches.direct = false;
    let no_direct = summary(&feedback_after_frame(&mut fx, &mut c, &fb));
    fx.state.scanout.switches.direct = true;

    t.toplevel.unset_fullscreen();
    attach_opaque(&mut fx, &mut c, &t.surface);
    let back = summary(&feedback_after_frame(&mut fx, &mut c, &fb));
    let sent = c.data.dmabuf.done[&fb.id().protocol_id()]
        .iter()
        .map(summary)
        .collect();
    assert!(c.data.protocol_error.is_none());
    (fx, [floating, fullscreen, no_direct, back], sent)
}

#[test]
fn surface_feedback_follows_fullscreen_and_the_direct_switch() {
    let (fx, [floating, fullscreen, no_direct, back], sent) = fullscreen_round_trip("amd");
    let render = render_formats(&fx);
    let overlay = plane_formats(&fx, PlaneKind::Overlay);
    let primary = plane_formats(&fx, PlaneKind::Primary);
    assert_ne!(overlay, primary, "the table must tell the two apart");
    assert_eq!(floating, vec![(1, overlay.clone()), (0, render.clone())]);
    assert_eq!(fullscreen, vec![(1, primary), (0, render.clone())]);
    assert_eq!(no_direct, vec![(1, overlay), (0, render)]);
    assert_eq!(back, floating);
    // Sent at creation (nothing drawn yet: render only), then on each change,
    // never twice in a row for the same answer. (A refresh between a configure
    // and the client's new buffer may add a real intermediate answer.)
    assert_eq!(sent[0], vec![(0, render_formats(&fx))]);
    assert!(sent.len() >= 4, "{sent:?}");
    assert!(sent.windows(2).all(|w| w[0] != w[1]), "{sent:?}");
}

#[test]
fn nvidia_gets_a_primary_tranche_but_never_an_overlay_one() {
    let (fx, [floating, fullscreen, no_direct, back], _) = fullscreen_round_trip("nvidia");
    let render = render_formats(&fx);
    let primary = plane_formats(&fx, PlaneKind::Primary);
    assert_eq!(floating, vec![(0, render.clone())]);
    assert_eq!(fullscreen, vec![(1, primary), (0, render.clone())]);
    assert_eq!(no_direct, vec![(0, render)]);
    assert_eq!(back, floating);
}

/// What a hostile client sends.
type Send = Box<dyn FnOnce(&mut TestClient, &ZwpLinuxDmabufV1) -> ZwpLinuxBufferParamsV1>;

/// A fresh client sends one malformed request; returns the protocol error code
/// on zwp_linux_buffer_params_v1, if any, and the client.
fn hostile(
    fx: &mut Fixture,
    send: impl FnOnce(&mut TestClient, &ZwpLinuxDmabufV1) -> ZwpLinuxBufferParamsV1,
) -> (Option<u32>, TestClient, u32) {
    let (mut c, _) = fx.add_client();
    let dmabuf = c.bind_dmabuf();
    let params = send(&mut c, &dmabuf);
    fx.roundtrip(&mut c);
    let code = c.data.protocol_error_code.clone().map(|(interface, code)| {
        assert_eq!(interface, "zwp_linux_buffer_params_v1");
        code
    });
    (code, c, params.id().protocol_id())
}

fn params(c: &TestClient, dmabuf: &ZwpLinuxDmabufV1) -> ZwpLinuxBufferParamsV1 {
    dmabuf.create_params(&c.qh(), ())
}

/// One linear XR24 plane for a `w`x`h` buffer in a `size`-byte file.
fn one_plane(
    c: &TestClient,
    d: &ZwpLinuxDmabufV1,
    size: u64,
    stride: u32,
) -> ZwpLinuxBufferParamsV1 {
    let p = params(c, d);
    add_plane(&p, &memfd(size), 0, 0, stride, MOD_LINEAR);
    p
}

/// How the buffer is asked for: `create` (answered by an event) or
/// `create_immed` (the buffer exists at once; refusals are protocol errors).
#[derive(Clone, Copy)]
enum Create {
    Queued,
    Immed,
}

/// One linear XR24 plane of `stride` in a `file`-byte memfd, then a buffer of
/// `size` asked for the `how` way.
fn buffer(file: u64, stride: u32, size: (i32, i32), how: Create) -> Send {
    Box::new(move |c, d| {
        let p = one_plane(c, d, file, stride);
        match how {
            Create::Queued => p.create(size.0, size.1, XR24, Flags::empty()),
            Create::Immed => {
                p.create_immed(size.0, size.1, XR24, Flags::empty(), &c.qh(), ());
            }
        }
        p
    })
}

#[test]
fn malformed_params_get_the_protocols_errors() {
    let mut fx = Fixture::new();
    let (mut bystander, _) = fx.add_client();
    let t = fx.map_toplevel(&mut bystander, "bystander", (1280, 720), 0xff20_4060);
    let none = Flags::empty();
    let cases: Vec<(&str, ParamsError, Send)> = vec![
        (
            "plane index 4 of 4",
            ParamsError::PlaneIdx,
            Box::new(|c, d| {
                let p = params(c, d);
                add_plane(&p, &memfd(4096), 4, 0, 64, MOD_LINEAR);
                p
            }),
        ),
        (
            "plane 0 twice",
            ParamsError::PlaneSet,
            Box::new(|c, d| {
                let p = params(c, d);
                let fd = memfd(4096);
                add_plane(&p, &fd, 0, 0, 64, MOD_LINEAR);
                add_plane(&p, &fd, 0, 0, 64, MOD_LINEAR);
                p
            }),
        ),
        (
            "a second create",
            ParamsError::AlreadyUsed,
            Box::new(move |c, d| {
                let p = one_plane(c, d, 64 * 16, 64);
                p.create(16, 16, XR24, none);
                p.create(16, 16, XR24, none);
                p
            }),
        ),
        (
            "no planes",
            ParamsError::Incomplete,
            Box::new(move |c, d| {
                let p = params(c, d);
                p.create(16, 16, XR24, none);
                p
            }),
        ),
        (
            "a format the renderer cannot import",
            ParamsError::InvalidFormat,
            Box::new(move |c, d| {
                let p = params(c, d);
                let fd = memfd(4096);
                add_plane(&p, &fd, 0, 0, 16, MOD_LINEAR);
                add_plane(&p, &fd, 1, 256, 16, MOD_LINEAR);
                p.create(16, 16, NV12, none);
                p
            }),
        ),
        (
            "a modifier the renderer cannot import",
            ParamsError::InvalidFormat,
            Box::new(move |c, d| {
                let p = params(c, d);
                add_plane(&p, &memfd(64 * 16), 0, 0, 64, I915_X_TILED);
                p.create(16, 16, XR24, none);
                p
            }),
        ),
        (
            "zero width",
            ParamsError::InvalidDimensions,
            buffer(64 * 16, 64, (0, 16), Create::Queued),
        ),
        (
            "a negative height on create_immed (smithay would panic)",
            ParamsError::InvalidDimensions,
            buffer(64 * 16, 64, (16, -1), Create::Immed),
        ),
        (
            "an offset past the end",
            ParamsError::OutOfBounds,
            Box::new(move |c, d| {
                let p = params(c, d);
                add_plane(&p, &memfd(4096), 0, 8192, 64, MOD_LINEAR);
                p.create(16, 16, XR24, none);
                p
            }),
        ),
        (
            "a stride times height that overflows",
            ParamsError::OutOfBounds,
            buffer(4096, 1 << 30, (16, 16), Create::Queued),
        ),
        (
            "rows that run past the end",
            ParamsError::OutOfBounds,
            buffer(64 * 8, 64, (16, 16), Create::Queued),
        ),
        (
            "create_immed with a stride shorter than a row",
            ParamsError::InvalidWlBuffer,
            buffer(64 * 16, 32, (16, 16), Create::Immed),
        ),
        (
            "create_immed of a file that is not a dmabuf",
            ParamsError::InvalidWlBuffer,
            buffer(64 * 16, 64, (16, 16), Create::Immed),
        ),
    ];
    for (what, want, send) in cases {
        let (code, _, _) = hostile(&mut fx, send);
        assert_eq!(code, Some(want as u32), "{what}");
    }

    // `create` refusals the client can recover from are a `failed` event.
    let failures: Vec<(&str, Send)> = vec![
        (
            "a stride shorter than a row",
            buffer(64 * 16, 32, (16, 16), Create::Queued),
        ),
        (
            "a file that is not a dmabuf",
            buffer(64 * 16, 64, (16, 16), Create::Queued),
        ),
        (
            "a pipe",
            Box::new(move |c, d| {
                let p = params(c, d);
                let (read, _write) = std::io::pipe().unwrap();
                add_plane(&p, &read, 0, 0, 64, MOD_LINEAR);
                p.create(16, 16, XR24, none);
                p
            }),
        ),
    ];
    for (what, send) in failures {
        let (code, c, id) = hostile(&mut fx, send);
        assert_eq!(code, None, "{what}");
        assert_eq!(c.data.dmabuf.failed, vec![id], "{what}");
    }

    // The bystander never noticed.
    assert!(
        fx.next_frame(&mut bystander, &t.surface),
        "no frame for the bystander"
    );
    assert!(bystander.data.protocol_error.is_none());
    assert_eq!(fx.focused_app().as_deref(), Some("bystander"));
}

#[test]
fn an_opaque_full_output_single_pixel_background_becomes_the_clear_colour() {
    let mut fx = Fixture::new();
    fx.state.simulate_planes("intel").unwrap();
    let (mut c, _) = fx.add_client();
    let qh = c.qh();
    let surface = c.data.compositor.as_ref().unwrap().create_surface(&qh, ());
    let layer = c.data.layer_shell.as_ref().unwrap().get_layer_surface(
        &surface,
        None,
        zwlr_layer_shell_v1::Layer::Background,
        "wallpaper".into(),
        &qh,
        (),
    );
    use zwlr_layer_surface_v1::Anchor;
    layer.set_anchor(Anchor::Top | Anchor::Bottom | Anchor::Left | Anchor::Right);
    surface.commit();
    fx.roundtrip(&mut c);
    let viewport = c
        .data
        .viewporter
        .as_ref()
        .unwrap()
        .get_viewport(&surface, &qh, ());
    viewport.set_destination(1280, 720);
    let wide = |v: u8| u32::from(v) * 0x0101_0101;
    let spb = c.data.single_pixel.as_ref().unwrap();
    let buffer = spb.create_u32_rgba_buffer(wide(0x10), wide(0x80), wide(0x40), u32::MAX, &qh, ());
    surface.attach(Some(&buffer), 0, 0);
    surface.damage_buffer(0, 0, 1, 1);
    surface.commit();
    fx.roundtrip(&mut c);
    // A floating window above it.
    let t = c.create_toplevel("above");
    t.toplevel.set_min_size(200, 100);
    t.toplevel.set_max_size(200, 100);
    t.surface.commit();
    fx.roundtrip(&mut c);
    c.attach_configured(&t.surface, (200, 100), 0xffff_ffff);
    fx.roundtrip(&mut c);

    let frame = fx.screenshot();
    assert_eq!(
        pixel(&frame, 5, 5),
        [0x10, 0x80, 0x40, 0xff],
        "the wallpaper colour"
    );
    assert_eq!(
        pixel(&frame, 640, 360),
        [0xff, 0xff, 0xff, 0xff],
        "the window"
    );

    let report = fx.state.scanout.report();
    assert_eq!(report.source, "simulated:intel");
    let out = &report.outputs[0];
    let placement_of = |buffer: &str| {
        let e = out.last_frame.iter().find(|e| e.buffer == buffer);
        e.map(|e| e.placement)
    };
    assert_eq!(placement_of("single-pixel"), Some(Placement::Background));
    assert!(matches!(
        placement_of("shm"),
        Some(Placement::Composited(_))
    ));
    assert!(out.counters.background >= 1);
    assert_eq!(out.counters.hidden, 0);
    let [r, g, b, a] = out.clear_colour.expect("a clear colour from the wallpaper");
    let to8 = |v: f32| (v * 255.0).round() as u8;
    assert_eq!([to8(r), to8(g), to8(b), to8(a)], [0x10, 0x80, 0x40, 0xff]);
}

#[test]
fn a_window_straddling_two_outputs_loses_its_scanout_tranche_until_it_fits_one() {
    use crate::backend::headless::VirtualOutput;
    let mut fx = Fixture::new();
    fx.state.simulate_planes("amd").unwrap();
    let second = fx
        .state
        .add_virtual_output(VirtualOutput {
            width: 1280,
            height: 720,
            refresh_mhz: 60_000,
            scale: 1.0,
        })
        .unwrap();
    let (mut c, _) = fx.add_client();
    let (_t, fb) = floating_with_feedback(&mut fx, &mut c, "mover");
    fx.roundtrip(&mut c);
    let render = render_formats(&fx);
    let overlay = plane_formats(&fx, PlaneKind::Overlay);
    let window = fx.state.space.elements().next().unwrap().clone();

    let at = |fx: &mut Fixture, c: &mut TestClient, x: i32| {
        fx.state.space.map_element(window.clone(), (x, 100), false);
        let first = fx.state.outputs()[0].clone();
        fx.state.render_headless(&first, false, true).unwrap();
        fx.state.render_headless(&second, false, true).unwrap();
        fx.roundtrip(c);
        summary(c.data.dmabuf.latest(&fb).expect("feedback"))
    };
    assert_eq!(
        at(&mut fx, &mut c, 100),
        vec![(1, overlay.clone()), (0, render.clone())]
    );
    // Across the boundary at x = 1280: no single CRTC can scan it out.
    assert_eq!(at(&mut fx, &mut c, 1100), vec![(0, render.clone())]);
    // Wholly on the second output.
    assert_eq!(at(&mut fx, &mut c, 1500), vec![(1, overlay), (0, render)]);
}

/// `--plane-table FILE.toml`: the planes of a table written for a GPU the
/// built-in tables lack are what the policy plans against and reports.
#[test]
fn a_plane_table_file_is_planned_against_and_a_bad_one_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("gpu.toml");
    std::fs::write(
        &good,
        "driver = \"my-drm\"\n\n[[plane]]\nid = 31\nkind = \"primary\"\nformats = [\"XR24:linear\"]\n\n\
         [[plane]]\nid = 32\nkind = \"overlay\"\nformats = [\"XR24:linear\", \"NV12:linear\"]\n",
    )
    .unwrap();
    let mut fx = Fixture::new();
    fx.state.simulate_planes(&good.to_string_lossy()).unwrap();
    let report = fx.state.scanout.report();
    assert_eq!(report.driver, "my-drm");
    assert_eq!(report.source, format!("simulated:{}", good.display()));
    let kinds: Vec<_> = report.planes.iter().map(|p| (p.id, p.kind)).collect();
    assert_eq!(kinds, [(31, PlaneKind::Primary), (32, PlaneKind::Overlay)]);
    assert_eq!(fx.state.scanout.caps.planes[1].formats.len(), 2);
    // What the renderer imports of it is what a surface's overlay tranche offers.
    assert_eq!(
        plane_formats(&fx, PlaneKind::Overlay),
        [(fourcc(b"XR24"), MOD_LINEAR)]
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "driver = \"x\"\n[[plane]]\nid = 1\nkind = \"plane\"\nformats = []\n",
    )
    .unwrap();
    let err = fx
        .state
        .simulate_planes(&bad.to_string_lossy())
        .unwrap_err();
    assert!(err.contains("bad.toml") && err.contains(":4"), "{err}");
    assert_eq!(
        fx.state.scanout.report().driver,
        "my-drm",
        "the old table stays"
    );
}
