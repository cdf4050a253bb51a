//! From what a real DRM device reports to the plane policy's capability table,
//! and from the `[scanout]` switches to smithay's frame flags.

use smithay::backend::drm::compositor::FrameFlags;

use crate::render::planes::{DeviceCaps, FormatSet, PlaneCaps, PlaneKind, Rotations, Switches};

/// One plane as read from KMS: its type, `IN_FORMATS`, and the properties the
/// policy cares about.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaneProps {
    pub id: u32,
    pub kind: PlaneKind,
    pub formats: FormatSet,
    pub zpos: Option<i32>,
    /// The `rotation` property's supported bits; None when the plane has none
    /// (then only the identity is possible).
    pub rotation: Option<u64>,
    /// Whether the plane has a `pixel blend mode` property offering
    /// "Pre-multiplied" (or no such property: the legacy behaviour is premultiplied
    /// blending on planes above the primary).
    pub premultiplied: bool,
    pub cursor_size: Option<(u32, u32)>,
}

/// The policy's view of a plane. KMS does not say whether a plane scales, so
/// overlays are assumed to and primary and cursor planes are assumed not to: a
/// wrong "no" costs one composited element, a wrong "yes" a failed TEST commit.
pub fn plane_caps(p: &PlaneProps) -> PlaneCaps {
    PlaneCaps {
        id: p.id,
        kind: p.kind,
        formats: p.formats.clone(),
        zpos: p.zpos.and_then(|z| u32::try_from(z).ok()),
        scaling: p.kind == PlaneKind::Overlay,
        // The primary plane is the bottom of the stack: nothing below it to blend with.
        alpha: p.kind != PlaneKind::Primary && p.premultiplied,
        rotations: Rotations(
            p.rotation
                .map_or(Rotations::ROTATE_0, |bits| (bits & 0x3f) as u8),
        ),
        max_size: if p.kind == PlaneKind::Cursor {
            p.cursor_size
        } else {
            None
        },
    }
}

/// The supported bits of a plane's `rotation` property, from the names of its
/// bitmask entries (the kernel's `rotate-0` ... `reflect-y`), in [`Rotations`]'
/// layout. Names this does not know are left out: the plane is then not asked
/// for them.
pub fn rotation_mask<'a>(entries: impl IntoIterator<Item = &'a str>) -> u64 {
    entries
        .into_iter()
        .filter_map(Rotations::bit_named)
        .fold(0u64, |mask, bit| mask | u64::from(bit))
}

pub fn device_caps(driver: &str, planes: &[PlaneProps]) -> DeviceCaps {
    DeviceCaps::new(driver, planes.iter().map(plane_caps).collect())
}

/// What smithay's DrmCompositor may try on a frame. `backoff` is set after
/// scanout commits failed repeatedly on this output: then everything is
/// composited until it clears.
pub fn frame_flags(switches: &Switches, caps: &DeviceCaps, backoff: bool) -> FrameFlags {
    let mut flags = FrameFlags::empty();
    if backoff {
        return flags;
    }
    if switches.direct {
        flags |= FrameFlags::ALLOW_PRIMARY_PLANE_SCANOUT;
    }
    if switches.overlay_planes && !caps.quirks.no_overlays {
        flags |= FrameFlags::ALLOW_OVERLAY_PLANE_SCANOUT;
    }
    if switches.cursor_plane {
        flags |= FrameFlags::ALLOW_CURSOR_PLANE_SCANOUT;
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::planes::{PlaneFormat, fourcc};

    fn formats() -> FormatSet {
        [PlaneFormat {
            fourcc: fourcc(b"XR24"),
            modifier: 0,
        }]
        .into_iter()
        .collect()
    }

    fn plane(id: u32, kind: PlaneKind) -> PlaneProps {
        PlaneProps {
            id,
            kind,
            formats: formats(),
            zpos: Some(1),
            rotation: Some(0b1_0101),
            premultiplied: true,
            cursor_size: Some((64, 64)),
        }
    }

    #[test]
    fn rotation_bits_come_from_the_property_entry_names() {
        // i915's primary plane: rotate-0, -180 and reflect-x.
        let mask = rotation_mask(["rotate-0", "rotate-180", "reflect-x"]);
        let caps = plane_caps(&PlaneProps {
            rotation: Some(mask),
            ..plane(31, PlaneKind::Primary)
        });
        assert!(
            caps.rotations
                .supports(Rotations::ROTATE_180 | Rotations::REFLECT_X)
        );
        assert!(!caps.rotations.supports(Rotations::ROTATE_90));
        // Every name the kernel defines, and one it may add later.
        let all = rotation_mask([
            "rotate-0",
            "rotate-90",
            "rotate-180",
            "rotate-270",
            "reflect-x",
            "reflect-y",
            "rotate-45",
        ]);
        assert_eq!(all, 0x3f);
        assert_eq!(rotation_mask([]), 0);
    }

    #[test]
    fn virtio_gpu_reports_a_primary_and_a_cursor_without_rotation() {
        let mut primary = plane(31, PlaneKind::Primary);
        primary.rotation = None;
        primary.zpos = None;
        let mut cursor = plane(33, PlaneKind::Cursor);
        cursor.rotation = None;
        let caps = device_caps("virtio_gpu", &[primary, cursor]);
        let p = &caps.planes[0];
        assert_eq!(p.rotations, Rotations(Rotations::ROTATE_0));
        assert!(!p.alpha && !p.scaling && p.max_size.is_none() && p.zpos.is_none());
        let c = &caps.planes[1];
        assert_eq!(c.max_size, Some((64, 64)));
        assert!(c.alpha && !c.scaling);
        assert!(!caps.quirks.no_overlays);
    }

    #[test]
    fn overlays_keep_their_rotation_bits_and_blend() {
        let o = plane_caps(&plane(40, PlaneKind::Overlay));
        assert_eq!(
            o.rotations,
            Rotations(Rotations::ROTATE_0 | Rotations::ROTATE_180 | Rotations::REFLECT_X)
        );
        assert!(o.scaling && o.alpha);
        assert_eq!(o.zpos, Some(1));
        let mut coverage_only = plane(41, PlaneKind::Overlay);
        coverage_only.premultiplied = false;
        coverage_only.zpos = Some(-1);
        let o = plane_caps(&coverage_only);
        assert!(!o.alpha);
        assert_eq!(
            o.zpos, None,
            "a negative zpos is not a position above anything"
        );
    }

    #[test]
    fn frame_flags_follow_the_switches_and_the_quirks() {
        let all = Switches::default();
        let amd = device_caps("amdgpu", &[plane(1, PlaneKind::Primary)]);
        assert_eq!(
            frame_flags(&all, &amd, false),
            FrameFlags::ALLOW_PRIMARY_PLANE_SCANOUT
                | FrameFlags::ALLOW_OVERLAY_PLANE_SCANOUT
                | FrameFlags::ALLOW_CURSOR_PLANE_SCANOUT
        );
        let nvidia = device_caps("nvidia-drm", &[plane(1, PlaneKind::Primary)]);
        assert!(
            !frame_flags(&all, &nvidia, false).contains(FrameFlags::ALLOW_OVERLAY_PLANE_SCANOUT)
        );
        let no_direct = Switches {
            direct: false,
            overlay_planes: false,
            cursor_plane: true,
        };
        assert_eq!(
            frame_flags(&no_direct, &amd, false),
            FrameFlags::ALLOW_CURSOR_PLANE_SCANOUT
        );
        assert_eq!(frame_flags(&all, &amd, true), FrameFlags::empty());
    }
}
