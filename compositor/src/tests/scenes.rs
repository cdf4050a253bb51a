//! Screenshot scenes, drawn by both renderers and compared three ways: with explicit
//! pixel expectations derived from the protocol text, with a reference PNG under
//! `compositor/tests/reference/`, and with each other.
//!
//! `TESSERA_BLESS=1 cargo test -p tessera scenes` rewrites the references from the
//! Pixman frames; a missing reference is a failure, never a silent pass.

use std::path::PathBuf;

use wayland_client::protocol::wl_output::Transform;
use wayland_client::{Connection, Dispatch, QueueHandle, delegate_noop};
use wayland_protocols::wp::viewporter::client::{wp_viewport, wp_viewporter};
use wayland_protocols::xdg::shell::client::{xdg_popup, xdg_positioner};

use super::client::{ClientData, TestClient, Toplevel};
use super::fixture::Fixture;
use crate::backend::Capture;
use crate::backend::headless::RendererChoice;

pub(super) const RED: u32 = 0xffff_0000;
pub(super) const GREEN: u32 = 0xff00_ff00;
const BLUE: u32 = 0xff00_00ff;
const WHITE: u32 = 0xffff_ffff;
pub(super) const GREY: u32 = 0xff80_8080;
const BACKDROP: u32 = 0xff33_66cc;
/// Room around a window that the crop keeps, so misplacement shows.
const MARGIN: i32 = 48;

/// Quadrants of a `w`x`h` buffer: red, green / blue, white.
fn quadrants(w: i32, h: i32) -> impl Fn(i32, i32) -> u32 {
    move |x, y| match (x < w / 2, y < h / 2) {
        (true, true) => RED,
        (false, true) => GREEN,
        (true, false) => BLUE,
        (false, false) => WHITE,
    }
}

pub(super) fn rgba(argb: u32) -> [u8; 4] {
    let [b, g, r, a] = argb.to_le_bytes();
    [r, g, b, a]
}

/// A crop of a frame around one window, and where that window is in it.
struct Shot {
    crop: Capture,
    /// The window's top-left corner inside `crop`.
    origin: (i32, i32),
}

impl Shot {
    /// The pixel at window-relative `(x, y)`.
    fn at(&self, x: i32, y: i32) -> [u8; 4] {
        self.crop
            .pixel((self.origin.0 + x) as u32, (self.origin.1 + y) as u32)
    }

    fn expect(&self, renderer: &str, what: &str, x: i32, y: i32, want: [u8; 4]) {
        let got = self.at(x, y);
        let close = got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 3);
        assert!(
            close,
            "{renderer}: {what} at ({x}, {y}) is {got:?}, expected {want:?}"
        );
    }
}

/// A toplevel whose min and max size are `w`x`h`: the shell floats it at that size.
pub(super) fn floating(
    fx: &mut Fixture,
    c: &mut TestClient,
    app_id: &str,
    w: i32,
    h: i32,
) -> Toplevel {
    let t = c.create_toplevel(app_id);
    t.toplevel.set_min_size(w, h);
    t.toplevel.set_max_size(w, h);
    t.surface.commit();
    fx.roundtrip(c);
    t
}

pub(super) fn window_location(fx: &Fixture, app_id: &str) -> (i32, i32) {
    let window = fx
        .state
        .space
        .elements()
        .find(|w| crate::shell::app_id_and_title(w).0.as_deref() == Some(app_id))
        .cloned()
        .unwrap_or_else(|| panic!("no mapped window {app_id}"));
    let loc = fx.state.space.element_location(&window).unwrap();
    (loc.x, loc.y)
}

/// Screenshot, cropped to the window `app_id` plus a margin (and `extra` more pixels
/// on every side for content that sticks out of the window).
fn shot(fx: &mut Fixture, app_id: &str, size: (i32, i32), extra: i32) -> Shot {
    let (x, y) = window_location(fx, app_id);
    let frame = fx.screenshot();
    let m = MARGIN + extra;
    let x0 = (x - m).max(0);
    let y0 = (y - m).max(0);
    let x1 = (x + size.0 + m).min(frame.width as i32);
    let y1 = (y + size.1 + m).min(frame.height as i32);
    let (w, h) = ((x1 - x0) as u32, (y1 - y0) as u32);
    let mut rgba = Vec::with_capacity((w * h * 4) as usize);
    for row in y0..y1 {
        let start = ((row as u32 * frame.width + x0 as u32) * 4) as usize;
        rgba.extend_from_slice(&frame.rgba[start..start + (w * 4) as usize]);
    }
    Shot {
        crop: Capture {
            width: w,
            height: h,
            rgba,
        },
        origin: (x - x0, y - y0),
    }
}

/// Pixels differ when a channel differs by more than 6; up to 0.5% of pixels may
/// (filtering at scaled edges); none may differ by more than 96.
fn compare(a: &Capture, b: &Capture) -> Result<(), String> {
    if (a.width, a.height) != (b.width, b.height) {
        return Err(format!(
            "sizes differ: {}x{} vs {}x{}",
            a.width, a.height, b.width, b.height
        ));
    }
    let mut off = 0usize;
    let mut worst = 0u8;
    for (pa, pb) in a.rgba.chunks_exact(4).zip(b.rgba.chunks_exact(4)) {
        let d = pa
            .iter()
            .zip(pb)
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0);
        worst = worst.max(d);
        if d > 6 {
            off += 1;
        }
    }
    let total = (a.width * a.height) as usize;
    if off * 200 > total || worst > 96 {
        return Err(format!(
            "{off} of {total} pixels differ (worst channel difference {worst})"
        ));
    }
    Ok(())
}

fn reference_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/reference/{name}.png"))
}

/// Builds `scene` on both renderers, runs `expect` on each frame, and compares the
/// frames with the reference and with each other.
fn check(name: &str, scene: impl Fn(&mut Fixture) -> Shot, expect: impl Fn(&str, &Shot)) {
    let mut shots = Vec::new();
    for (renderer, label) in [
        (RendererChoice::Pixman, "pixman"),
        (RendererChoice::Gles, "gles"),
    ] {
        let mut fx = Fixture::with_renderer(renderer);
        let s = scene(&mut fx);
        expect(label, &s);
        shots.push((label, s));
    }
    let path = reference_path(name);
    let dump = |label: &str, c: &Capture| {
        let out = std::env::temp_dir().join(format!("tessera-scene-{name}-{label}.png"));
        crate::screenshot::write_png(&out, c).unwrap();
        out
    };
    if std::env::var_os("TESSERA_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        crate::screenshot::write_png(&path, &shots[0].1.crop).unwrap();
    }
    let reference = crate::screenshot::read_png(&path).unwrap_or_else(|e| {
        panic!(
            "reference {} unreadable ({e}); create it with TESSERA_BLESS=1 after checking {}",
            path.display(),
            dump("pixman", &shots[0].1.crop).display()
        )
    });
    for (label, s) in &shots {
        if let Err(e) = compare(&reference, &s.crop) {
            panic!(
                "{name}: {label} differs from {}: {e} (frame written to {})",
                path.display(),
                dump(label, &s.crop).display()
            );
        }
    }
    if let Err(e) = compare(&shots[0].1.crop, &shots[1].1.crop) {
        panic!("{name}: pixman and gles disagree: {e}");
    }
}

/// Maps a maximized opaque backdrop, so that blending has something to blend with.
fn backdrop(fx: &mut Fixture) -> TestClient {
    let (mut c, _) = fx.add_client();
    let _ = fx.map_toplevel(&mut c, "backdrop", (1280, 720), BACKDROP);
    c
}

#[test]
fn alpha_blending() {
    check(
        "alpha",
        |fx| {
            let _bg = backdrop(fx);
            let (mut c, _) = fx.add_client();
            let t = floating(fx, &mut c, "alpha", 256, 128);
            // Top half: premultiplied white with alpha rising left to right.
            // Bottom half: premultiplied red at 50%.
            let buffer = c.pattern_buffer(256, 128, |x, y| {
                if y < 64 {
                    let a = x as u32;
                    (a << 24) | (a << 16) | (a << 8) | a
                } else {
                    0x8080_0000
                }
            });
            t.surface.attach(Some(&buffer), 0, 0);
            t.surface.damage_buffer(0, 0, 256, 128);
            t.surface.commit();
            fx.roundtrip(&mut c);
            shot(fx, "alpha", (256, 128), 0)
        },
        |r, s| {
            let [br, bg, bb, _] = rgba(BACKDROP);
            let over = |src: u8, a: u8, dst: u8| {
                (f32::from(src) + f32::from(dst) * (1.0 - f32::from(a) / 255.0)).round() as u8
            };
            for x in [0u8, 64, 128, 200, 255] {
                let want = [over(x, x, br), over(x, x, bg), over(x, x, bb), 0xff];
                s.expect(r, "white ramp over the backdrop", i32::from(x), 32, want);
            }
            let want = [
                over(0x80, 0x80, br),
                over(0, 0x80, bg),
                over(0, 0x80, bb),
                0xff,
            ];
            s.expect(r, "50% red over the backdrop", 128, 96, want);
            s.expect(r, "backdrop beside the window", -20, 64, rgba(BACKDROP));
        },
    );
}

#[test]
fn subsurfaces_above_and_below() {
    check(
        "subsurfaces",
        |fx| {
            let (mut c, _) = fx.add_client();
            let t = floating(fx, &mut c, "subsurfaces", 160, 160);
            let qh = c.qh();
            let compositor = c.data.compositor.clone().unwrap();
            let subcompositor = c.data.subcompositor.clone().unwrap();
            let above = compositor.create_surface(&qh, ());
            let below = compositor.create_surface(&qh, ());
            let sub_above = subcompositor.get_subsurface(&above, &t.surface, &qh, ());
            let sub_below = subcompositor.get_subsurface(&below, &t.surface, &qh, ());
            sub_above.set_position(120, 120);
            sub_below.set_position(-40, -40);
            sub_below.place_below(&t.surface);
            for (surface, colour) in [(&above, RED), (&below, BLUE)] {
                let b = c.buffer(80, 80, colour);
                surface.attach(Some(&b), 0, 0);
                surface.damage_buffer(0, 0, 80, 80);
                surface.commit();
            }
            // The window is the parent surface; the children stick out of it.
            t.xdg_surface.set_window_geometry(0, 0, 160, 160);
            let b = c.buffer(160, 160, GREEN);
            t.surface.attach(Some(&b), 0, 0);
            t.surface.damage_buffer(0, 0, 160, 160);
            t.surface.commit();
            fx.roundtrip(&mut c);
            shot(fx, "subsurfaces", (160, 160), 40)
        },
        |r, s| {
            s.expect(r, "parent", 60, 60, rgba(GREEN));
            s.expect(r, "subsurface above, over the parent", 140, 140, rgba(RED));
            s.expect(
                r,
                "subsurface above, outside the parent",
                190,
                190,
                rgba(RED),
            );
            s.expect(
                r,
                "subsurface below, outside the parent",
                -20,
                -20,
                rgba(BLUE),
            );
            s.expect(r, "subsurface below, under the parent", 20, 20, rgba(GREEN));
        },
    );
}

#[test]
fn buffer_scale_two() {
    check(
        "scale2",
        |fx| {
            let (mut c, _) = fx.add_client();
            let t = floating(fx, &mut c, "scale2", 100, 100);
            let b = c.pattern_buffer(200, 200, quadrants(200, 200));
            t.surface.set_buffer_scale(2);
            t.surface.attach(Some(&b), 0, 0);
            t.surface.damage_buffer(0, 0, 200, 200);
            t.surface.commit();
            fx.roundtrip(&mut c);
            shot(fx, "scale2", (100, 100), 0)
        },
        |r, s| {
            s.expect(r, "top-left quadrant", 25, 25, rgba(RED));
            s.expect(r, "top-right quadrant", 75, 25, rgba(GREEN));
            s.expect(r, "bottom-left quadrant", 25, 75, rgba(BLUE));
            s.expect(r, "bottom-right quadrant", 75, 75, rgba(WHITE));
            // A 200x200 buffer at scale 2 is 100x100 on a scale-1 output.
            let outside = s.at(110, 50);
            assert_ne!(outside, rgba(GREEN), "{r}: the surface is 100 wide");
        },
    );
}

#[test]
fn buffer_transform_90() {
    check(
        "transform90",
        |fx| {
            let (mut c, _) = fx.add_client();
            // A 200x100 buffer the client rotated 90° counter-clockwise: the
            // compositor shows it rotated back, as a 100x200 surface.
            let t = floating(fx, &mut c, "transform90", 100, 200);
            let b = c.pattern_buffer(200, 100, quadrants(200, 100));
            t.surface.set_buffer_transform(Transform::_90);
            t.surface.attach(Some(&b), 0, 0);
            t.surface.damage_buffer(0, 0, 200, 100);
            t.surface.commit();
            fx.roundtrip(&mut c);
            shot(fx, "transform90", (100, 200), 0)
        },
        |r, s| {
            // Rotating the buffer 90° clockwise: its bottom-left corner comes to the
            // top-left, its top-left to the top-right, and so on.
            s.expect(r, "top-left (buffer bottom-left)", 25, 50, rgba(BLUE));
            s.expect(r, "top-right (buffer top-left)", 75, 50, rgba(RED));
            s.expect(r, "bottom-left (buffer bottom-right)", 25, 150, rgba(WHITE));
            s.expect(r, "bottom-right (buffer top-right)", 75, 150, rgba(GREEN));
        },
    );
}

#[test]
fn viewporter_crop_and_scale() {
    check(
        "viewport",
        |fx| {
            let (mut c, _) = fx.add_client();
            let t = floating(fx, &mut c, "viewport", 200, 100);
            let viewporter = c.data.viewporter.clone().unwrap();
            let viewport = viewporter.get_viewport(&t.surface, &c.qh(), ());
            // The middle of the top half (half red, half green), stretched 2x wide.
            viewport.set_source(50.0, 0.0, 100.0, 100.0);
            viewport.set_destination(200, 100);
            let b = c.pattern_buffer(200, 200, quadrants(200, 200));
            t.surface.attach(Some(&b), 0, 0);
            t.surface.damage_buffer(0, 0, 200, 200);
            t.surface.commit();
            fx.roundtrip(&mut c);
            shot(fx, "viewport", (200, 100), 0)
        },
        |r, s| {
            s.expect(r, "left half (red, cropped)", 40, 50, rgba(RED));
            s.expect(r, "right half (green, cropped)", 160, 50, rgba(GREEN));
            s.expect(r, "bottom edge (no blue or white)", 40, 95, rgba(RED));
            s.expect(r, "bottom edge (no blue or white)", 160, 95, rgba(GREEN));
        },
    );
}

#[test]
fn popup_over_its_toplevel() {
    check(
        "popup",
        |fx| {
            let (mut c, _) = fx.add_client();
            let t = floating(fx, &mut c, "popup-parent", 300, 200);
            let b = c.buffer(300, 200, GREY);
            t.surface.attach(Some(&b), 0, 0);
            t.surface.damage_buffer(0, 0, 300, 200);
            t.surface.commit();
            fx.roundtrip(&mut c);

            let popup = c.popup(&t.xdg_surface, (120, 60), (20, 20, 40, 30));
            let surface = popup.surface.clone();
            fx.roundtrip(&mut c);
            assert_eq!(
                c.data.popup_configures.last(),
                Some(&(60, 50, 120, 60)),
                "the popup goes at the anchor rectangle's bottom-right corner"
            );
            let b = c.buffer(120, 60, RED);
            surface.attach(Some(&b), 0, 0);
            surface.damage_buffer(0, 0, 120, 60);
            surface.commit();
            fx.roundtrip(&mut c);
            shot(fx, "popup-parent", (300, 200), 0)
        },
        |r, s| {
            s.expect(r, "parent", 10, 10, rgba(GREY));
            s.expect(r, "popup", 120, 80, rgba(RED));
            s.expect(r, "popup top-left corner", 61, 51, rgba(RED));
            s.expect(r, "parent beside the popup", 190, 80, rgba(GREY));
            s.expect(r, "parent above the popup", 120, 45, rgba(GREY));
        },
    );
}

impl Dispatch<xdg_popup::XdgPopup, ()> for ClientData {
    fn event(
        state: &mut Self,
        _: &xdg_popup::XdgPopup,
        event: xdg_popup::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_popup::Event::Configure {
            x,
            y,
            width,
            height,
        } = event
        {
            state.popup_configures.push((x, y, width, height));
        }
    }
}

delegate_noop!(ClientData: ignore xdg_positioner::XdgPositioner);
delegate_noop!(ClientData: ignore wp_viewporter::WpViewporter);
delegate_noop!(ClientData: ignore wp_viewport::WpViewport);
delegate_noop!(ClientData: ignore wayland_client::protocol::wl_subcompositor::WlSubcompositor);
delegate_noop!(ClientData: ignore wayland_client::protocol::wl_subsurface::WlSubsurface);

#[test]
fn the_comparison_catches_a_moved_window() {
    // Guards `compare` against accepting anything: a 20x20 square moved by 4 px.
    let frame = |dx: u32| {
        let mut c = Capture {
            width: 64,
            height: 64,
            rgba: vec![0; 64 * 64 * 4],
        };
        for y in 10..30 {
            for x in (10 + dx)..(30 + dx) {
                let i = ((y * 64 + x) * 4) as usize;
                c.rgba[i..i + 4].copy_from_slice(&[255, 0, 0, 255]);
            }
        }
        c
    };
    assert!(compare(&frame(0), &frame(0)).is_ok());
    assert!(compare(&frame(0), &frame(4)).is_err());
}

#[test]
fn a_dialog_dims_its_parent_and_the_focused_floater_has_a_border() {
    check(
        "dialog",
        |fx| {
            let (mut c, _) = fx.add_client();
            let parent = floating(fx, &mut c, "dialog-parent", 300, 200);
            let b = c.buffer(300, 200, GREY);
            parent.surface.attach(Some(&b), 0, 0);
            parent.surface.damage_buffer(0, 0, 300, 200);
            parent.surface.commit();
            fx.roundtrip(&mut c);
            let dialog = floating(fx, &mut c, "dialog", 120, 80);
            dialog.toplevel.set_parent(Some(&parent.toplevel));
            let b = c.buffer(120, 80, WHITE);
            dialog.surface.attach(Some(&b), 0, 0);
            dialog.surface.damage_buffer(0, 0, 120, 80);
            dialog.surface.commit();
            fx.roundtrip(&mut c);
            shot(fx, "dialog-parent", (300, 200), 0)
        },
        |r, s| {
            // Default config: dialog_dim = 0.4, a 2 px #5294e2 focus border.
            let dimmed = (f32::from(0x80u8) * 0.6).round() as u8;
            s.expect(r, "parent, dimmed", 10, 10, [dimmed, dimmed, dimmed, 0xff]);
            // The dialog is centred over its parent: (90, 60) to (210, 140).
            s.expect(r, "dialog, not dimmed", 150, 100, rgba(WHITE));
            s.expect(r, "dialog's border", 89, 100, [0x52, 0x94, 0xe2, 0xff]);
            s.expect(r, "dialog's border", 150, 58, [0x52, 0x94, 0xe2, 0xff]);
            s.expect(
                r,
                "dim stops at the border",
                87,
                100,
                [dimmed, dimmed, dimmed, 0xff],
            );
        },
    );
}

/// A single-pixel buffer of premultiplied 8-bit channels, scaled by the protocol's
/// rule (each channel is a u32 where u32::MAX is 1.0).
fn single_pixel(c: &TestClient, rgba: [u8; 4]) -> wayland_client::protocol::wl_buffer::WlBuffer {
    let wide = |v: u8| u32::from(v) * 0x0101_0101;
    c.data
        .single_pixel
        .clone()
        .expect("single-pixel manager")
        .create_u32_rgba_buffer(
            wide(rgba[0]),
            wide(rgba[1]),
            wide(rgba[2]),
            wide(rgba[3]),
            &c.qh(),
            (),
        )
}

/// A floating `w`x`h` window whose only content is a single-pixel buffer stretched
/// by a viewport.
fn single_pixel_window(fx: &mut Fixture, app_id: &str, rgba: [u8; 4], w: i32, h: i32) -> Shot {
    let (mut c, _) = fx.add_client();
    let t = floating(fx, &mut c, app_id, w, h);
    let viewport = c
        .data
        .viewporter
        .clone()
        .unwrap()
        .get_viewport(&t.surface, &c.qh(), ());
    viewport.set_destination(w, h);
    let b = single_pixel(&c, rgba);
    t.surface.attach(Some(&b), 0, 0);
    t.surface.damage_buffer(0, 0, 1, 1);
    t.surface.commit();
    fx.roundtrip(&mut c);
    shot(fx, app_id, (w, h), 0)
}

#[test]
fn single_pixel_opaque() {
    check(
        "single-pixel-opaque",
        |fx| {
            let _bg = backdrop(fx);
            single_pixel_window(fx, "sp-opaque", [0x20, 0xc0, 0x60, 0xff], 300, 200)
        },
        |r, s| {
            for (x, y) in [(0, 0), (150, 100), (299, 199)] {
                s.expect(r, "the colour everywhere", x, y, [0x20, 0xc0, 0x60, 0xff]);
            }
            s.expect(r, "backdrop outside", -10, 100, rgba(BACKDROP));
            s.expect(r, "backdrop outside", 310, 100, rgba(BACKDROP));
        },
    );
}

#[test]
fn single_pixel_translucent() {
    check(
        "single-pixel-translucent",
        |fx| {
            let _bg = backdrop(fx);
            // Premultiplied 50% black-ish red: (0x80, 0, 0, 0x80).
            single_pixel_window(fx, "sp-translucent", [0x80, 0x00, 0x00, 0x80], 240, 160)
        },
        |r, s| {
            let [br, bg, bb, _] = rgba(BACKDROP);
            let over = |src: u8, dst: u8| {
                (f32::from(src) + f32::from(dst) * (1.0 - 128.0 / 255.0)).round() as u8
            };
            let want = [over(0x80, br), over(0, bg), over(0, bb), 0xff];
            s.expect(r, "blended over the backdrop", 120, 80, want);
            s.expect(r, "blended at the corner", 1, 1, want);
        },
    );
}

#[test]
fn single_pixel_scaled_to_a_thin_bar() {
    // The way clients draw borders and separators: 1x1 stretched to 400x6.
    check(
        "single-pixel-bar",
        |fx| {
            let _bg = backdrop(fx);
            single_pixel_window(fx, "sp-bar", [0xff, 0xff, 0xff, 0xff], 400, 6)
        },
        |r, s| {
            for x in [0, 200, 399] {
                s.expect(r, "the bar", x, 0, rgba(WHITE));
                s.expect(r, "the bar", x, 5, rgba(WHITE));
            }
            // The 2 px focus border sits right outside; the backdrop beyond it.
            s.expect(
                r,
                "focus border below the bar",
                200,
                7,
                [0x52, 0x94, 0xe2, 0xff],
            );
            s.expect(r, "backdrop below the border", 200, 9, rgba(BACKDROP));
            s.expect(r, "backdrop above the border", 200, -4, rgba(BACKDROP));
        },
    );
}
