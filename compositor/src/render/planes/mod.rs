//! The plane policy: which elements go to which KMS plane, and what dmabuf feedback
//! each surface gets. Pure: it sees a capability table, the element list and the
//! config switches, and decides; the backend applies the plan (through
//! `DrmCompositor`'s TEST commits) and reports failures back as
//! [`Element::scanout_failures`].
//!
//! Rules a peer got wrong, and the tests in `tests.rs` that hold them:
//! - a scanout tranche only ever lists formats a reachable plane takes *and* the
//!   renderer can import (so falling back to composition never needs a realloc);
//! - the render feedback never holds a scanout tranche (niri #3913);
//! - overlays with different format lists get an intersection tranche first, so a
//!   client that picks from it fits any of them (catacomb #95);
//! - NVIDIA gets no overlay planes and no overlay tranches (niri #1765).

pub mod failures;
pub mod file;
mod tables;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use tables::{CapabilityTable, TABLES, table_by_name};

/// A DRM fourcc code and format modifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PlaneFormat {
    pub fourcc: u32,
    pub modifier: u64,
}

pub type FormatSet = BTreeSet<PlaneFormat>;

pub const MOD_LINEAR: u64 = 0;
/// `DRM_FORMAT_MOD_INVALID`: the buffer has an implicit, driver-chosen layout.
pub const MOD_INVALID: u64 = 0x00ff_ffff_ffff_ffff;

pub const fn fourcc(code: &[u8; 4]) -> u32 {
    (code[0] as u32) | (code[1] as u32) << 8 | (code[2] as u32) << 16 | (code[3] as u32) << 24
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlaneKind {
    Primary,
    Overlay,
    Cursor,
}

/// The KMS `rotation` property bits a plane accepts (DRM_MODE_ROTATE_* / REFLECT_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Rotations(pub u8);

impl Rotations {
    pub const ROTATE_0: u8 = 1 << 0;
    pub const ROTATE_90: u8 = 1 << 1;
    pub const ROTATE_180: u8 = 1 << 2;
    pub const ROTATE_270: u8 = 1 << 3;
    pub const REFLECT_X: u8 = 1 << 4;
    pub const REFLECT_Y: u8 = 1 << 5;

    /// The bit of a `rotation` property entry, by the kernel's name for it.
    pub fn bit_named(name: &str) -> Option<u8> {
        Some(match name {
            "rotate-0" => Self::ROTATE_0,
            "rotate-90" => Self::ROTATE_90,
            "rotate-180" => Self::ROTATE_180,
            "rotate-270" => Self::ROTATE_270,
            "reflect-x" => Self::REFLECT_X,
            "reflect-y" => Self::REFLECT_Y,
            _ => return None,
        })
    }

    pub fn supports(self, wanted: u8) -> bool {
        wanted & !self.0 == 0
    }
}

/// What one plane can do, as the KMS properties describe it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlaneCaps {
    pub id: u32,
    pub kind: PlaneKind,
    pub formats: FormatSet,
    /// Higher is nearer the viewer. None when the driver does not expose zpos.
    pub zpos: Option<u32>,
    /// Whether source and destination sizes may differ.
    pub scaling: bool,
    /// Whether it blends per-pixel alpha (premultiplied) over what is below.
    pub alpha: bool,
    pub rotations: Rotations,
    /// The largest buffer it takes, e.g. the cursor size.
    pub max_size: Option<(u32, u32)>,
}

impl PlaneCaps {
    fn takes_shape(&self, e: &Element) -> Result<(), Composited> {
        if e.scaled && !self.scaling {
            return Err(Composited::Scaling);
        }
        if !self.rotations.supports(e.rotation) {
            return Err(Composited::Rotation);
        }
        if e.translucent() && !self.alpha {
            return Err(Composited::Alpha);
        }
        if let Some((w, h)) = self.max_size
            && (e.size.0 > w as i32 || e.size.1 > h as i32)
        {
            return Err(Composited::TooLarge);
        }
        Ok(())
    }

    fn takes(&self, e: &Element) -> Result<(), Composited> {
        self.takes_shape(e)?;
        match e.buffer {
            Buffer::Dmabuf(f) if self.formats.contains(&f) => Ok(()),
            Buffer::Dmabuf(_) => Err(Composited::Format),
            _ => Err(Composited::NotDmabuf),
        }
    }
}

/// Per-driver quirks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Quirks {
    /// Never use overlay planes, whatever the table says.
    pub no_overlays: bool,
}

impl Quirks {
    /// The quirks for a kernel driver name (`drmVersion.name`).
    pub fn for_driver(driver: &str) -> Self {
        Self {
            // nvidia-drm exposes overlays, but scanout of client buffers on them
            // corrupts or stalls on the proprietary driver; KWin and niri avoid them.
            no_overlays: driver == "nvidia-drm",
        }
    }
}

/// A CRTC's planes and the driver's quirks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceCaps {
    pub driver: String,
    pub planes: Vec<PlaneCaps>,
    pub quirks: Quirks,
}

impl DeviceCaps {
    pub fn new(driver: &str, planes: Vec<PlaneCaps>) -> Self {
        Self {
            driver: driver.into(),
            planes,
            quirks: Quirks::for_driver(driver),
        }
    }

    fn planes_of(&self, kind: PlaneKind) -> impl Iterator<Item = &PlaneCaps> {
        self.planes.iter().filter(move |p| p.kind == kind)
    }

    /// Overlays front to back (highest zpos first, then table order).
    fn overlays(&self) -> Vec<&PlaneCaps> {
        let mut o: Vec<_> = self.planes_of(PlaneKind::Overlay).collect();
        o.sort_by_key(|p| std::cmp::Reverse(p.zpos.unwrap_or(0)));
        o
    }
}

/// The `[scanout]` switches from compositor.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switches {
    pub direct: bool,
    pub overlay_planes: bool,
    pub cursor_plane: bool,
}

impl Default for Switches {
    fn default() -> Self {
        Self {
            direct: true,
            overlay_planes: true,
            cursor_plane: true,
        }
    }
}

/// After this many frames in a row in which the TEST commit refused an element,
/// it is composited and its feedback loses the scanout tranche.
pub const FAILURE_LIMIT: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Buffer {
    Dmabuf(PlaneFormat),
    Shm,
    /// wp_single_pixel_buffer_v1: one premultiplied RGBA colour.
    SinglePixel([f32; 4]),
    /// Compositor-drawn (decorations, dim).
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Surface,
    Cursor,
}

/// One element of an output's frame, in output buffer pixels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Element {
    pub id: u64,
    pub role: Role,
    pub buffer: Buffer,
    pub position: (i32, i32),
    pub size: (i32, i32),
    /// Source and destination sizes differ (viewporter, buffer scale mismatch).
    pub scaled: bool,
    /// The rotation bits the plane would need (Rotations::ROTATE_0 for none).
    pub rotation: u8,
    /// The buffer has no alpha channel or an opaque region covering it.
    pub opaque: bool,
    /// Element-level alpha (1.0 for none).
    pub alpha: f32,
    pub scanout_failures: u32,
}

impl Element {
    /// An opaque, unscaled, unrotated surface with no scanout failures yet.
    pub fn surface(id: u64, buffer: Buffer, position: (i32, i32), size: (i32, i32)) -> Self {
        Self {
            id,
            role: Role::Surface,
            buffer,
            position,
            size,
            scaled: false,
            rotation: Rotations::ROTATE_0,
            opaque: true,
            alpha: 1.0,
            scanout_failures: 0,
        }
    }

    fn translucent(&self) -> bool {
        !self.opaque || self.alpha < 1.0
    }

    fn covers(&self, output: (i32, i32)) -> bool {
        self.position == (0, 0) && self.size == output
    }

    fn keeps_failing(&self) -> bool {
        self.scanout_failures >= FAILURE_LIMIT
    }

    /// An opaque single-pixel buffer over the whole output: a background colour.
    fn background(&self, output: (i32, i32)) -> Option<[f32; 4]> {
        match self.buffer {
            Buffer::SinglePixel(rgba)
                if rgba[3] >= 1.0 && self.alpha >= 1.0 && self.covers(output) =>
            {
                Some(rgba)
            }
            _ => None,
        }
    }
}

/// Why an element is drawn by the renderer instead of a plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Composited {
    /// The config switch for that plane kind is off.
    Disabled,
    /// The driver quirk forbids it.
    Quirk,
    NotDmabuf,
    NoPlane,
    Format,
    Scaling,
    Rotation,
    Alpha,
    TooLarge,
    KeepsFailing,
    /// Something in front of it is composited, so it must be too.
    BehindComposited,
}

impl Composited {
    /// The name in `tessera msg planes` and its JSON (the serde name).
    pub fn name(self) -> &'static str {
        match self {
            Composited::Disabled => "disabled",
            Composited::Quirk => "quirk",
            Composited::NotDmabuf => "not-dmabuf",
            Composited::NoPlane => "no-plane",
            Composited::Format => "format",
            Composited::Scaling => "scaling",
            Composited::Rotation => "rotation",
            Composited::Alpha => "alpha",
            Composited::TooLarge => "too-large",
            Composited::KeepsFailing => "keeps-failing",
            Composited::BehindComposited => "behind-composited",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "on", content = "detail")]
pub enum Placement {
    Primary(u32),
    Overlay(u32),
    Cursor(u32),
    Composited(Composited),
    /// An opaque full-output single-pixel buffer, turned into the clear colour.
    Background,
    /// Behind the background: never drawn.
    Hidden,
}

/// The policy's decision for one frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Front to back, as the elements came.
    pub placements: Vec<(u64, Placement)>,
    /// The CRTC background / clear colour, when a background element supplied it.
    pub clear_colour: Option<[f32; 4]>,
}

impl Plan {
    pub fn placement(&self, id: u64) -> Option<Placement> {
        self.placements
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, p)| *p)
    }

    /// Whether the renderer has anything to draw on the primary plane.
    pub fn composites(&self) -> bool {
        self.placements
            .iter()
            .any(|(_, p)| matches!(p, Placement::Composited(_)))
    }
}

/// Places the elements of one output's frame, given front to back.
pub fn plan(
    caps: &DeviceCaps,
    switches: &Switches,
    output: (i32, i32),
    elements: &[Element],
) -> Plan {
    let mut placements = Vec::with_capacity(elements.len());
    // The front-most opaque full-output single-pixel buffer hides all behind it.
    let background = elements.iter().position(|e| e.background(output).is_some());
    let clear_colour = background.and_then(|i| elements[i].background(output));
    let visible = background.map_or(elements, |i| &elements[..i]);

    let overlays_allowed = if !switches.overlay_planes {
        Err(Composited::Disabled)
    } else if caps.quirks.no_overlays {
        Err(Composited::Quirk)
    } else {
        Ok(())
    };
    let mut free_overlays = caps.overlays();
    let mut behind_composited = false;
    for (index, e) in visible.iter().enumerate() {
        let bottom = index + 1 == visible.len();
        let placement = if behind_composited {
            Placement::Composited(Composited::BehindComposited)
        } else if e.keeps_failing() {
            Placement::Composited(Composited::KeepsFailing)
        } else if e.role == Role::Cursor {
            cursor_plane(caps, switches, e)
        } else if bottom && let Ok(id) = primary_plane(caps, switches, output, e) {
            Placement::Primary(id)
        } else {
            match overlays_allowed.and_then(|()| take_overlay(&mut free_overlays, e)) {
                Ok(id) => Placement::Overlay(id),
                Err(why) => Placement::Composited(why),
            }
        };
        behind_composited |= matches!(placement, Placement::Composited(_));
        placements.push((e.id, placement));
    }
    if let Some(i) = background {
        placements.push((elements[i].id, Placement::Background));
        placements.extend(elements[i + 1..].iter().map(|e| (e.id, Placement::Hidden)));
    }
    Plan {
        placements,
        clear_colour,
    }
}

fn cursor_plane(caps: &DeviceCaps, switches: &Switches, e: &Element) -> Placement {
    if !switches.cursor_plane {
        return Placement::Composited(Composited::Disabled);
    }
    let mut why = Composited::NoPlane;
    for plane in caps.planes_of(PlaneKind::Cursor) {
        match plane.takes(e) {
            Ok(()) => return Placement::Cursor(plane.id),
            Err(w) => why = w,
        }
    }
    Placement::Composited(why)
}

fn primary_plane(
    caps: &DeviceCaps,
    switches: &Switches,
    output: (i32, i32),
    e: &Element,
) -> Result<u32, Composited> {
    if !switches.direct {
        return Err(Composited::Disabled);
    }
    // The primary plane is the bottom of the stack: nothing shows through it.
    if !e.covers(output) || e.translucent() {
        return Err(Composited::NoPlane);
    }
    if e.scaled {
        return Err(Composited::Scaling);
    }
    let plane = caps
        .planes_of(PlaneKind::Primary)
        .next()
        .ok_or(Composited::NoPlane)?;
    plane.takes(e).map(|()| plane.id)
}

fn take_overlay(free: &mut Vec<&PlaneCaps>, e: &Element) -> Result<u32, Composited> {
    let mut why = Composited::NoPlane;
    for (i, plane) in free.iter().enumerate() {
        match plane.takes(e) {
            Ok(()) => {
                let id = plane.id;
                // Planes in front of the one taken can no longer hold elements
                // behind this one without breaking the stacking order.
                free.drain(..=i);
                return Ok(id);
            }
            Err(w) => why = w,
        }
    }
    Err(why)
}

/// One tranche of dmabuf feedback.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Tranche {
    pub formats: FormatSet,
    /// The protocol's `scanout` tranche flag.
    pub scanout: bool,
    /// The plane kind a scanout tranche is for.
    pub plane: Option<PlaneKind>,
}

/// Feedback for one surface: preferred tranches first, the render tranche last.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SurfaceFeedback {
    pub tranches: Vec<Tranche>,
}

impl SurfaceFeedback {
    pub fn has_scanout(&self) -> bool {
        self.tranches.iter().any(|t| t.scanout)
    }
}

/// The default feedback (`get_default_feedback`): the render formats only. Scanout
/// tranches are per surface, where the compositor knows which plane it can reach.
pub fn default_feedback(render: &FormatSet) -> SurfaceFeedback {
    SurfaceFeedback {
        tranches: vec![Tranche {
            formats: render.clone(),
            scanout: false,
            plane: None,
        }],
    }
}

/// The feedback for one surface: a scanout tranche for the plane it can really
/// reach (none when it can reach none), then the render tranche.
pub fn surface_feedback(
    caps: &DeviceCaps,
    switches: &Switches,
    render: &FormatSet,
    output: (i32, i32),
    e: &Element,
) -> SurfaceFeedback {
    let mut feedback = default_feedback(render);
    if e.keeps_failing() {
        return feedback;
    }
    let scanout = |formats: FormatSet, plane| Tranche {
        formats: formats.intersection(render).copied().collect(),
        scanout: true,
        plane: Some(plane),
    };
    let mut tranches: Vec<Tranche> = Vec::new();
    let primary = caps.planes_of(PlaneKind::Primary).next();
    if e.role == Role::Cursor {
        if switches.cursor_plane {
            let formats = caps
                .planes_of(PlaneKind::Cursor)
                .filter(|p| p.takes_shape(e).is_ok())
                .flat_map(|p| p.formats.iter().copied())
                .collect();
            tranches.push(scanout(formats, PlaneKind::Cursor));
        }
    } else if let Some(primary) = primary.filter(|p| {
        switches.direct
            && e.covers(output)
            && !e.translucent()
            && !e.scaled
            && p.takes_shape(e).is_ok()
    }) {
        tranches.push(scanout(primary.formats.clone(), PlaneKind::Primary));
    } else if switches.overlay_planes && !caps.quirks.no_overlays {
        let reachable: Vec<_> = caps
            .overlays()
            .into_iter()
            .filter(|p| p.takes_shape(e).is_ok())
            .collect();
        if let Some((first, rest)) = reachable.split_first() {
            let union: FormatSet = reachable
                .iter()
                .flat_map(|p| p.formats.iter().copied())
                .collect();
            let common: FormatSet = rest.iter().fold(first.formats.clone(), |acc, p| {
                acc.intersection(&p.formats).copied().collect()
            });
            let union = scanout(union, PlaneKind::Overlay);
            let common = scanout(common, PlaneKind::Overlay);
            if common != union {
                tranches.push(common);
            }
            tranches.push(union);
        }
    }
    tranches.retain(|t| !t.formats.is_empty());
    tranches.extend(feedback.tranches);
    feedback.tranches = tranches;
    feedback
}
