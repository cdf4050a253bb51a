use super::tables::*;
use super::*;

const OUT: (i32, i32) = (1920, 1080);

fn table(name: &str) -> DeviceCaps {
    (table_by_name(name).unwrap().build)()
}

fn fmt(fourcc: u32, modifier: u64) -> PlaneFormat {
    PlaneFormat { fourcc, modifier }
}

/// What a GLES renderer on that GPU could import: everything the planes list.
fn render_formats(caps: &DeviceCaps) -> FormatSet {
    caps.planes
        .iter()
        .flat_map(|p| p.formats.iter().copied())
        .collect()
}

fn window(id: u64, f: PlaneFormat, pos: (i32, i32), size: (i32, i32)) -> Element {
    Element::surface(id, Buffer::Dmabuf(f), pos, size)
}

fn fullscreen(id: u64, f: PlaneFormat) -> Element {
    window(id, f, (0, 0), OUT)
}

fn cursor_el(id: u64, f: PlaneFormat, size: i32) -> Element {
    Element {
        role: Role::Cursor,
        opaque: false,
        ..window(id, f, (100, 100), (size, size))
    }
}

/// The invariants every feedback must keep, whatever the table.
fn check_feedback(caps: &DeviceCaps, render: &FormatSet, fb: &SurfaceFeedback) {
    let last = fb.tranches.last().expect("a render tranche");
    assert!(!last.scanout && last.plane.is_none(), "render tranche last");
    assert_eq!(&last.formats, render);
    for t in &fb.tranches[..fb.tranches.len() - 1] {
        assert!(
            t.scanout,
            "only scanout tranches precede the render tranche"
        );
        assert!(!t.formats.is_empty(), "an empty tranche");
        assert!(
            t.formats.is_subset(render),
            "renderer cannot import a fallback"
        );
        let kind = t.plane.unwrap();
        // Every format in it is taken by some plane of that kind.
        for f in &t.formats {
            assert!(
                caps.planes
                    .iter()
                    .any(|p| p.kind == kind && p.formats.contains(f)),
                "{f:?} in a {kind:?} tranche but on no such plane"
            );
        }
    }
}

#[test]
fn a_fullscreen_opaque_buffer_takes_the_primary_plane_on_every_table() {
    for t in TABLES {
        let caps = (t.build)();
        let render = render_formats(&caps);
        let primary = caps
            .planes
            .iter()
            .find(|p| p.kind == PlaneKind::Primary)
            .unwrap();
        let f = *primary
            .formats
            .iter()
            .find(|f| f.fourcc == XRGB8888 || f.fourcc == ARGB8888)
            .unwrap();
        let e = fullscreen(1, f);
        let plan = plan(&caps, &Switches::default(), OUT, std::slice::from_ref(&e));
        assert_eq!(
            plan.placements,
            vec![(1, Placement::Primary(primary.id))],
            "{}",
            t.name
        );
        assert!(!plan.composites());
        let fb = surface_feedback(&caps, &Switches::default(), &render, OUT, &e);
        check_feedback(&caps, &render, &fb);
        assert_eq!(fb.tranches[0].plane, Some(PlaneKind::Primary), "{}", t.name);
        assert!(fb.tranches[0].formats.is_subset(&primary.formats));
    }
}

#[test]
fn feedback_invariants_hold_for_every_table_and_element_shape() {
    let switch_sets = [
        Switches::default(),
        Switches {
            direct: false,
            ..Switches::default()
        },
        Switches {
            overlay_planes: false,
            ..Switches::default()
        },
        Switches {
            direct: false,
            overlay_planes: false,
            cursor_plane: false,
        },
    ];
    for t in TABLES {
        let caps = (t.build)();
        let render = render_formats(&caps);
        let f = fmt(ARGB8888, MOD_LINEAR);
        let mut shapes = vec![
            fullscreen(1, f),
            window(2, f, (10, 10), (640, 480)),
            Element {
                scaled: true,
                ..window(3, f, (10, 10), (640, 480))
            },
            Element {
                opaque: false,
                ..fullscreen(4, f)
            },
            Element {
                rotation: Rotations::ROTATE_90,
                ..window(5, f, (0, 0), (300, 300))
            },
            cursor_el(6, f, 64),
            cursor_el(7, f, 1024),
        ];
        shapes.push(Element {
            scanout_failures: FAILURE_LIMIT,
            ..fullscreen(8, f)
        });
        for s in &switch_sets {
            for e in &shapes {
                check_feedback(&caps, &render, &surface_feedback(&caps, s, &render, OUT, e));
            }
        }
    }
}

#[test]
fn the_default_feedback_never_holds_a_scanout_tranche() {
    // niri #3913: the render feedback must stay render-only so that the per-surface
    // choice between render and scanout feedback means something.
    for t in TABLES {
        let caps = (t.build)();
        let fb = default_feedback(&render_formats(&caps));
        assert!(!fb.has_scanout(), "{}", t.name);
        assert_eq!(fb.tranches.len(), 1);
    }
}

#[test]
fn disabled_direct_scanout_drops_the_primary_tranche() {
    let caps = table("amd");
    let render = render_formats(&caps);
    let e = fullscreen(1, fmt(XRGB8888, AMD_GFX10_3_DCC));
    let off = Switches {
        direct: false,
        overlay_planes: false,
        ..Switches::default()
    };
    let fb = surface_feedback(&caps, &off, &render, OUT, &e);
    assert!(!fb.has_scanout(), "{fb:?}");
    let p = plan(&caps, &off, OUT, &[e]);
    assert_eq!(
        p.placements,
        vec![(1, Placement::Composited(Composited::Disabled))]
    );
}

#[test]
fn virtio_gpu_offers_no_overlay_tranche_because_no_plane_could_take_it() {
    let caps = table("virtio-gpu");
    let render = render_formats(&caps);
    let e = window(1, fmt(ARGB8888, MOD_INVALID), (50, 50), (800, 600));
    let fb = surface_feedback(&caps, &Switches::default(), &render, OUT, &e);
    assert!(!fb.has_scanout(), "{fb:?}");
    let p = plan(&caps, &Switches::default(), OUT, &[e]);
    assert_eq!(
        p.placements,
        vec![(1, Placement::Composited(Composited::NoPlane))]
    );
    // The cursor goes to the cursor plane; a cursor too big for it does not.
    let c = cursor_el(2, fmt(ARGB8888, MOD_INVALID), 64);
    assert_eq!(
        plan(&caps, &Switches::default(), OUT, std::slice::from_ref(&c)).placement(2),
        Some(Placement::Cursor(34))
    );
    let fb = surface_feedback(&caps, &Switches::default(), &render, OUT, &c);
    assert_eq!(fb.tranches[0].plane, Some(PlaneKind::Cursor));
    let big = cursor_el(3, fmt(ARGB8888, MOD_INVALID), 128);
    assert_eq!(
        plan(&caps, &Switches::default(), OUT, std::slice::from_ref(&big)).placement(3),
        Some(Placement::Composited(Composited::TooLarge))
    );
    assert!(!surface_feedback(&caps, &Switches::default(), &render, OUT, &big).has_scanout());
}

#[test]
fn overlays_with_different_formats_get_an_intersection_tranche_first() {
    // catacomb #95: on Adreno the VIG pipe takes NV12, the DMA pipe does not.
    let caps = table("adreno");
    let render = render_formats(&caps);
    let e = window(1, fmt(ARGB8888, MOD_LINEAR), (100, 100), (400, 300));
    let fb = surface_feedback(&caps, &Switches::default(), &render, OUT, &e);
    check_feedback(&caps, &render, &fb);
    assert_eq!(fb.tranches.len(), 3, "{fb:?}");
    let (common, all) = (&fb.tranches[0].formats, &fb.tranches[1].formats);
    assert!(common.is_subset(all) && common != all);
    assert!(!common.contains(&fmt(NV12, MOD_LINEAR)));
    assert!(all.contains(&fmt(NV12, MOD_LINEAR)));
    // Every format of the first tranche fits every overlay.
    for p in caps.planes.iter().filter(|p| p.kind == PlaneKind::Overlay) {
        assert!(common.is_subset(&p.formats), "plane {}", p.id);
    }
    // A scaled surface reaches only the VIG pipe: one tranche, no duplicate.
    let scaled = Element { scaled: true, ..e };
    let fb = surface_feedback(&caps, &Switches::default(), &render, OUT, &scaled);
    assert_eq!(fb.tranches.len(), 2, "{fb:?}");
    assert!(fb.tranches[0].formats.contains(&fmt(NV12, QCOM_COMPRESSED)));
}

#[test]
fn nvidia_defaults_are_safe() {
    // niri #1765: no overlays on nvidia-drm, and no feedback that pushes clients there.
    let caps = table("nvidia");
    assert!(caps.quirks.no_overlays);
    let render = render_formats(&caps);
    let w = window(1, fmt(XRGB8888, NVIDIA_BLOCK_LINEAR), (10, 10), (800, 600));
    assert!(!surface_feedback(&caps, &Switches::default(), &render, OUT, &w).has_scanout());
    let fs = fullscreen(2, fmt(XRGB8888, NVIDIA_BLOCK_LINEAR));
    let p = plan(&caps, &Switches::default(), OUT, &[w, fs]);
    assert_eq!(
        p.placement(1),
        Some(Placement::Composited(Composited::Quirk))
    );
    // Behind a composited window, the fullscreen one cannot be on the primary plane.
    assert_eq!(
        p.placement(2),
        Some(Placement::Composited(Composited::BehindComposited))
    );
    assert!(
        Quirks::for_driver("nvidia-drm").no_overlays && !Quirks::for_driver("i915").no_overlays
    );
}

#[test]
fn intel_places_video_on_the_planes_that_read_media_compression() {
    let caps = table("intel");
    let video = window(1, fmt(NV12, I915_Y_TILED_GEN12_MC_CCS), (0, 0), (1280, 720));
    let ui = window(
        2,
        fmt(ARGB8888, I915_Y_TILED_GEN12_RC_CCS),
        (1300, 0),
        (600, 400),
    );
    let bg = fullscreen(3, fmt(XRGB8888, I915_Y_TILED));
    let p = plan(&caps, &Switches::default(), OUT, &[video, ui, bg]);
    // Overlays are taken front to back by zpos: 67 and 58 do not read NV12, so the
    // video goes to 49; the UI window must then sit below it, on 40.
    assert_eq!(p.placement(1), Some(Placement::Overlay(49)));
    assert_eq!(p.placement(2), Some(Placement::Overlay(40)));
    assert_eq!(p.placement(3), Some(Placement::Primary(31)));
    assert!(!p.composites());
}

#[test]
fn vc4_takes_sand128_video_but_not_a_quarter_turn() {
    let caps = table("vc4");
    let video = window(1, fmt(NV12, BROADCOM_SAND128), (0, 0), (1920, 800));
    let p = plan(
        &caps,
        &Switches::default(),
        OUT,
        std::slice::from_ref(&video),
    );
    assert_eq!(p.placement(1), Some(Placement::Overlay(77)));
    let turned = Element {
        rotation: Rotations::ROTATE_90,
        ..video
    };
    let p = plan(&caps, &Switches::default(), OUT, &[turned]);
    assert_eq!(
        p.placement(1),
        Some(Placement::Composited(Composited::Rotation))
    );
    // If the renderer cannot import SAND128, it is not offered for scanout either.
    let mut render = render_formats(&caps);
    render.retain(|f| f.modifier != BROADCOM_SAND128);
    let e = window(2, fmt(ARGB8888, MOD_LINEAR), (0, 0), (100, 100));
    let fb = surface_feedback(&caps, &Switches::default(), &render, OUT, &e);
    check_feedback(&caps, &render, &fb);
    assert!(
        fb.tranches
            .iter()
            .all(|t| !t.formats.contains(&fmt(NV12, BROADCOM_SAND128)))
    );
}

#[test]
fn mali_puts_afbc_on_cluster_planes_and_linear_on_esmart() {
    let caps = table("mali");
    let afbc = window(
        1,
        fmt(ARGB8888, ARM_AFBC_16X16_YTR_SPARSE),
        (0, 0),
        (800, 600),
    );
    let linear = window(2, fmt(ARGB8888, MOD_LINEAR), (900, 0), (800, 600));
    // Front to back: the linear window in front takes esmart 82, the AFBC one behind
    // it cannot use the esmart planes (wrong modifier) and takes cluster 54.
    let p = plan(&caps, &Switches::default(), OUT, &[linear, afbc]);
    assert_eq!(p.placement(2), Some(Placement::Overlay(82)));
    assert_eq!(p.placement(1), Some(Placement::Overlay(54)));
}

#[test]
fn an_element_that_keeps_failing_is_composited_and_loses_its_scanout_tranche() {
    let caps = table("amd");
    let render = render_formats(&caps);
    let mut e = fullscreen(1, fmt(XRGB8888, AMD_GFX10_3_DCC));
    e.scanout_failures = FAILURE_LIMIT - 1;
    assert_eq!(
        plan(&caps, &Switches::default(), OUT, &[e.clone()]).placement(1),
        Some(Placement::Primary(55))
    );
    assert!(surface_feedback(&caps, &Switches::default(), &render, OUT, &e).has_scanout());
    e.scanout_failures = FAILURE_LIMIT;
    assert_eq!(
        plan(&caps, &Switches::default(), OUT, &[e.clone()]).placement(1),
        Some(Placement::Composited(Composited::KeepsFailing))
    );
    assert!(!surface_feedback(&caps, &Switches::default(), &render, OUT, &e).has_scanout());
}

#[test]
fn a_composited_element_in_front_forces_composition_behind_it() {
    let caps = table("intel");
    let shm = Element {
        buffer: Buffer::Shm,
        ..window(1, fmt(0, 0), (10, 10), (300, 200))
    };
    let video = window(2, fmt(NV12, MOD_LINEAR), (0, 0), (1280, 720));
    let p = plan(&caps, &Switches::default(), OUT, &[shm, video]);
    assert_eq!(
        p.placement(1),
        Some(Placement::Composited(Composited::NotDmabuf))
    );
    assert_eq!(
        p.placement(2),
        Some(Placement::Composited(Composited::BehindComposited))
    );
}

#[test]
fn an_opaque_single_pixel_background_becomes_the_clear_colour() {
    let caps = table("virtio-gpu");
    let top = fullscreen(1, fmt(XRGB8888, MOD_INVALID));
    let bg = Element {
        buffer: Buffer::SinglePixel([0.1, 0.2, 0.3, 1.0]),
        ..fullscreen(2, fmt(0, 0))
    };
    let wallpaper = Element {
        buffer: Buffer::Shm,
        ..fullscreen(3, fmt(0, 0))
    };
    let p = plan(
        &caps,
        &Switches::default(),
        OUT,
        &[top.clone(), bg.clone(), wallpaper],
    );
    assert_eq!(p.placement(1), Some(Placement::Primary(31)));
    assert_eq!(p.placement(2), Some(Placement::Background));
    assert_eq!(p.placement(3), Some(Placement::Hidden));
    assert_eq!(p.clear_colour, Some([0.1, 0.2, 0.3, 1.0]));
    assert!(!p.composites());
    // A translucent single pixel, or one that does not cover the output, is drawn.
    for not_bg in [
        Element {
            buffer: Buffer::SinglePixel([0.0, 0.0, 0.0, 0.5]),
            ..bg.clone()
        },
        Element {
            size: (100, 100),
            ..bg
        },
    ] {
        let p = plan(&caps, &Switches::default(), OUT, &[not_bg]);
        assert_eq!(p.clear_colour, None);
        assert!(p.composites());
    }
}

#[test]
fn composited_names_are_the_serde_names() {
    use Composited::*;
    for why in [
        Disabled,
        Quirk,
        NotDmabuf,
        NoPlane,
        Format,
        Scaling,
        Rotation,
        Alpha,
        TooLarge,
        KeepsFailing,
        BehindComposited,
    ] {
        assert_eq!(serde_json::to_value(why).unwrap(), why.name(), "{why:?}");
    }
}
