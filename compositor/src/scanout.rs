//! The plane policy ([`crate::render::planes`]) applied to every frame: which
//! plane each element would take, what the renderer composites, counters for
//! `tessera msg planes`, and the dmabuf feedback each surface gets from it.
//!
//! On headless there are no planes, so the capability table is either empty
//! (everything composited) or a simulated one (`--plane-table intel`): the
//! renderer still draws every element, and the plan says what a real CRTC with
//! those planes would have done. The one decision that changes the picture path
//! on every backend is the background: an opaque full-output single-pixel buffer
//! becomes the clear colour instead of being drawn.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use smithay::backend::allocator::Buffer as _;
use smithay::backend::renderer::element::{
    Element as _, Id, Kind, RenderElement, UnderlyingStorage,
};
use smithay::backend::renderer::{Color32F, ImportAll, ImportMem, Renderer, Texture};
use smithay::desktop::layer_map_for_output;
use smithay::output::Output;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::utils::{Physical, Scale, Size, Transform};
use smithay::wayland::compositor::{TraversalAction, with_surface_tree_downward};
use smithay::wayland::dmabuf::{SurfaceDmabufFeedbackState, get_dmabuf};
use smithay::wayland::single_pixel_buffer::get_single_pixel_buffer;

use crate::render::OutputElement;
use crate::render::decoration::{DecorationPrograms, DecorationRenderer};
use crate::render::planes::failures::ScanoutFailures;
use crate::render::planes::{
    self, Buffer, DeviceCaps, Element, FormatSet, Placement, Plan, PlaneKind, Role, Rotations,
    SurfaceFeedback, Switches,
};
use crate::render::timing::{RenderTimeSummary, RenderTimes};
use crate::state::Tessera;

/// Where the planes came from and what the policy did with them.
pub struct Scanout {
    pub caps: DeviceCaps,
    /// `none`, `simulated:<table>`, or the DRM driver's name.
    pub source: String,
    pub switches: Switches,
    outputs: BTreeMap<String, OutputPlanes>,
    /// What each surface was last drawn as, and the size of the output it was on
    /// when it fitted inside one output (a plane belongs to one CRTC).
    surfaces: HashMap<u64, (Element, Option<(i32, i32)>)>,
    /// Per output: the elements the hardware kept refusing.
    failures: HashMap<String, ScanoutFailures>,
    render_times: HashMap<String, RenderTimes>,
    /// The policy's answers may have changed since dmabuf feedback was last
    /// sent: a surface drawn differently, gone, or new planes. Without it,
    /// every frame walked every surface tree to re-ask an unchanged policy.
    feedback_stale: bool,
    /// The switches the last feedback was sent under (a reload changes them).
    feedback_switches: Option<Switches>,
}

/// Element-frames per placement, summed since the output appeared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlaneCounters {
    pub frames: u64,
    pub primary: u64,
    pub overlay: u64,
    pub cursor: u64,
    pub composited: u64,
    pub background: u64,
    pub hidden: u64,
    /// Frames in which the renderer had something to draw.
    pub frames_composited: u64,
    /// Composited element-frames by reason.
    pub reasons: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElementReport {
    pub id: u64,
    /// `dmabuf`, `shm`, `single-pixel` or `internal`. Borrowed when made
    /// here, so that recording a frame allocates nothing per element.
    pub buffer: std::borrow::Cow<'static, str>,
    pub position: (i32, i32),
    pub size: (i32, i32),
    pub placement: Placement,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputPlanes {
    pub output: String,
    pub counters: PlaneCounters,
    /// The last frame, front to back.
    pub last_frame: Vec<ElementReport>,
    pub clear_colour: Option<[f32; 4]>,
    /// What the KMS commits really did; absent on headless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<KmsCounters>,
    /// How long the recent frames took to render.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_time: Option<RenderTimeSummary>,
}

/// Per output on the kms backend: what smithay's DrmCompositor put on the
/// planes, commit by commit. The plan above is the policy; this is the hardware.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KmsCounters {
    /// Frames committed to the CRTC.
    pub commits: u64,
    /// Frames with nothing new, not committed.
    pub empty: u64,
    /// Commits whose primary plane showed the compositor's own (composited) buffer.
    pub primary_swapchain: u64,
    /// Commits whose primary plane scanned out a client buffer directly.
    pub primary_client: u64,
    pub overlay_elements: u64,
    pub cursor_elements: u64,
    /// Commits the kernel refused; each is retried composited.
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaneSummary {
    pub id: u32,
    pub kind: PlaneKind,
    pub formats: usize,
}

/// The answer to `tessera msg planes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanesReport {
    pub source: String,
    pub driver: String,
    pub switches: Switches,
    pub no_overlays_quirk: bool,
    pub planes: Vec<PlaneSummary>,
    pub outputs: Vec<OutputPlanes>,
}

impl PlanesReport {
    /// The human-readable form `tessera msg planes` prints.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let kinds: Vec<String> = self
            .planes
            .iter()
            .map(|p| format!("{:?} {}", p.kind, p.id).to_lowercase())
            .collect();
        let _ = writeln!(
            s,
            "planes: {} ({}){}",
            self.source,
            if kinds.is_empty() {
                "no planes".into()
            } else {
                kinds.join(", ")
            },
            if self.no_overlays_quirk {
                ", overlays off by quirk"
            } else {
                ""
            }
        );
        let sw = &self.switches;
        let _ = writeln!(
            s,
            "switches: direct={} overlay_planes={} cursor_plane={}",
            sw.direct, sw.overlay_planes, sw.cursor_plane
        );
        for o in &self.outputs {
            let c = &o.counters;
            let _ = writeln!(
                s,
                "{}: {} frames, {} composited; element-frames: primary {} overlay {} cursor {} composited {} background {} hidden {}",
                o.output,
                c.frames,
                c.frames_composited,
                c.primary,
                c.overlay,
                c.cursor,
                c.composited,
                c.background,
                c.hidden
            );
            if let Some(k) = &o.kms {
                let _ = writeln!(
                    s,
                    "  kms: {} commits ({} empty frames skipped, {} failed); primary plane: composited {} client buffer {}; overlay elements {}; cursor elements {}",
                    k.commits,
                    k.empty,
                    k.failed,
                    k.primary_swapchain,
                    k.primary_client,
                    k.overlay_elements,
                    k.cursor_elements
                );
            }
            if let Some(t) = &o.render_time {
                let _ = writeln!(
                    s,
                    "  render time over the last {} frames: p50 {:.0} µs, p99 {:.0} µs, mean {:.0} µs; the first frame {:.0} µs",
                    t.window, t.p50_us, t.p99_us, t.mean_us, t.first_us
                );
            }
            for (why, n) in &c.reasons {
                let _ = writeln!(s, "  composited because {why}: {n}");
            }
            let _ = writeln!(s, "  last frame, front to back:");
            for e in &o.last_frame {
                let placement = match e.placement {
                    Placement::Primary(id) => format!("primary plane {id}"),
                    Placement::Overlay(id) => format!("overlay plane {id}"),
                    Placement::Cursor(id) => format!("cursor plane {id}"),
                    Placement::Composited(why) => format!("composited ({})", why.name()),
                    Placement::Background => "background (clear colour)".into(),
                    Placement::Hidden => "hidden".into(),
                };
                let _ = writeln!(
                    s,
                    "    {:016x} {:<12} {}x{} at {},{}: {placement}",
                    e.id, e.buffer, e.size.0, e.size.1, e.position.0, e.position.1
                );
            }
        }
        s
    }
}

/// One frame's elements as the policy sees them, and its decision.
pub struct Frame {
    pub elements: Vec<Element>,
    pub plan: Plan,
    pub output_size: (i32, i32),
}

impl Scanout {
    pub fn new(caps: DeviceCaps, source: String, switches: Switches) -> Self {
        Self {
            caps,
            source,
            switches,
            outputs: BTreeMap::new(),
            surfaces: HashMap::new(),
            failures: HashMap::new(),
            render_times: HashMap::new(),
            feedback_stale: true,
            feedback_switches: None,
        }
    }

    /// No planes at all: everything but a background is composited.
    pub fn without_planes(switches: Switches) -> Self {
        Self::new(DeviceCaps::new("none", Vec::new()), "none".into(), switches)
    }

    pub fn plan(&self, output_size: (i32, i32), elements: Vec<Element>) -> Frame {
        let plan = planes::plan(&self.caps, &self.switches, output_size, &elements);
        Frame {
            elements,
            plan,
            output_size,
        }
    }

    /// Counts a frame that reached the output.
    pub fn record(&mut self, output: &str, frame: &Frame) {
        // Looked up before inserting: a key allocated every frame for an
        // output seen every frame.
        if !self.outputs.contains_key(output) {
            self.outputs.insert(
                output.to_owned(),
                OutputPlanes {
                    output: output.to_owned(),
                    counters: PlaneCounters::default(),
                    last_frame: Vec::new(),
                    clear_colour: None,
                    kms: None,
                    render_time: None,
                },
            );
        }
        let Some(entry) = self.outputs.get_mut(output) else {
            return;
        };
        let c = &mut entry.counters;
        c.frames += 1;
        if frame.plan.composites() {
            c.frames_composited += 1;
        }
        entry.last_frame.clear();
        for (e, (_, placement)) in frame.elements.iter().zip(&frame.plan.placements) {
            match placement {
                Placement::Primary(_) => c.primary += 1,
                Placement::Overlay(_) => c.overlay += 1,
                Placement::Cursor(_) => c.cursor += 1,
                Placement::Composited(why) => {
                    c.composited += 1;
                    // Looked up by name first: allocating the key every
                    // element of every frame showed in profiles.
                    match c.reasons.get_mut(why.name()) {
                        Some(n) => *n += 1,
                        None => {
                            c.reasons.insert(why.name().to_owned(), 1);
                        }
                    }
                }
                Placement::Background => c.background += 1,
                Placement::Hidden => c.hidden += 1,
            }
            entry.last_frame.push(ElementReport {
                id: e.id,
                buffer: buffer_name(&e.buffer).into(),
                position: e.position,
                size: e.size,
                placement: *placement,
            });
            let (w, h) = frame.output_size;
            let inside = e.position.0 >= 0
                && e.position.1 >= 0
                && e.position.0 + e.size.0 <= w
                && e.position.1 + e.size.1 <= h;
            let drawn = (e.clone(), inside.then_some(frame.output_size));
            if self.surfaces.get(&e.id) != Some(&drawn) {
                self.surfaces.insert(e.id, drawn);
                self.feedback_stale = true;
            }
        }
        entry.clear_colour = frame.plan.clear_colour;
        // Forget surfaces no output shows any more (closed, minimized).
        let mut shown: Vec<u64> = self
            .outputs
            .values()
            .flat_map(|o| o.last_frame.iter().map(|e| e.id))
            .collect();
        shown.sort_unstable();
        let before = self.surfaces.len();
        self.surfaces
            .retain(|id, _| shown.binary_search(id).is_ok());
        self.feedback_stale |= self.surfaces.len() != before;
    }

    /// Whether dmabuf feedback must be sent again, since the last time this
    /// said so.
    fn take_feedback_stale(&mut self) -> bool {
        let stale = self.feedback_stale || self.feedback_switches != Some(self.switches);
        self.feedback_stale = false;
        self.feedback_switches = Some(self.switches);
        stale
    }

    /// Updates the hardware counters of `output`.
    pub fn record_kms(&mut self, output: &str, update: impl FnOnce(&mut KmsCounters)) {
        if let Some(o) = self.outputs.get_mut(output) {
            update(o.kms.get_or_insert_with(KmsCounters::default));
        }
    }

    /// How long a frame of `output` took, from its elements to its last pixel.
    pub fn record_render_time(&mut self, output: &str, took: Duration) {
        match self.render_times.get_mut(output) {
            Some(times) => times.record(took),
            None => {
                let mut times = RenderTimes::default();
                times.record(took);
                self.render_times.insert(output.to_owned(), times);
            }
        }
    }

    /// An output went away: its counters and the surfaces it showed go too.
    pub fn forget_output(&mut self, output: &str) {
        self.outputs.remove(output);
        self.failures.remove(output);
        self.render_times.remove(output);
    }

    /// How many frames in a row the hardware refused element `id` on `output`.
    pub fn failures_of(&self, output: &str, id: u64) -> u32 {
        self.failures.get(output).map_or(0, |f| f.of(id))
    }

    /// A committed frame of `output`: what the policy offered planes, against the
    /// elements the DrmCompositor really put on them.
    pub fn record_placements(&mut self, output: &str, plan: &Plan, placed: &HashSet<u64>) {
        self.failures
            .entry(output.to_owned())
            .or_default()
            .record(plan, placed);
    }

    pub fn report(&self) -> PlanesReport {
        PlanesReport {
            source: self.source.clone(),
            driver: self.caps.driver.clone(),
            switches: self.switches,
            no_overlays_quirk: self.caps.quirks.no_overlays,
            planes: self
                .caps
                .planes
                .iter()
                .map(|p| PlaneSummary {
                    id: p.id,
                    kind: p.kind,
                    formats: p.formats.len(),
                })
                .collect(),
            outputs: self
                .outputs
                .values()
                .map(|o| OutputPlanes {
                    render_time: self
                        .render_times
                        .get(&o.output)
                        .and_then(RenderTimes::summary),
                    ..o.clone()
                })
                .collect(),
        }
    }

    fn feedback_for_id(&self, id: u64, render: &FormatSet) -> SurfaceFeedback {
        match self.surfaces.get(&id) {
            Some((e, Some(output))) => {
                planes::surface_feedback(&self.caps, &self.switches, render, *output, e)
            }
            _ => planes::default_feedback(render),
        }
    }

    /// The feedback `surface` should have now.
    pub fn feedback_for(&self, surface: &WlSurface, render: &FormatSet) -> SurfaceFeedback {
        self.feedback_for_id(surface_id(surface), render)
    }
}

fn buffer_name(b: &Buffer) -> &'static str {
    match b {
        Buffer::Dmabuf(_) => "dmabuf",
        Buffer::Shm => "shm",
        Buffer::SinglePixel(_) => "single-pixel",
        Buffer::Internal => "internal",
    }
}

pub(crate) fn hash_id(id: &Id) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// The element id smithay gives a surface's render element.
fn surface_id(surface: &WlSurface) -> u64 {
    hash_id(&Id::from_wayland_resource(surface))
}

fn rotation_of(t: Transform) -> u8 {
    use Transform as T;
    match t {
        T::Normal => Rotations::ROTATE_0,
        T::_90 => Rotations::ROTATE_90,
        T::_180 => Rotations::ROTATE_180,
        T::_270 => Rotations::ROTATE_270,
        T::Flipped => Rotations::ROTATE_0 | Rotations::REFLECT_X,
        T::Flipped90 => Rotations::ROTATE_90 | Rotations::REFLECT_X,
        T::Flipped180 => Rotations::ROTATE_180 | Rotations::REFLECT_X,
        T::Flipped270 => Rotations::ROTATE_270 | Rotations::REFLECT_X,
    }
}

/// The policy's view of a frame's elements, front to back.
pub fn describe<R>(elements: &[OutputElement<R>], renderer: &mut R, scale: f64) -> Vec<Element>
where
    R: Renderer + ImportAll + ImportMem + DecorationRenderer,
    R::TextureId: Clone + Texture + 'static,
{
    let scale = Scale::from(scale);
    elements
        .iter()
        .map(|el| match el {
            // A kept window's snapshot is described once (see `kept`).
            OutputElement::Surface(s) => s.described(scale, || describe_one(el, renderer, scale)),
            _ => describe_one(el, renderer, scale),
        })
        .collect()
}

/// The plane policy's view of one element.
fn describe_one<R>(el: &OutputElement<R>, renderer: &mut R, scale: Scale<f64>) -> Element
where
    R: Renderer + ImportAll + ImportMem + DecorationRenderer,
    R::TextureId: Clone + Texture + 'static,
{
    let geo = el.geometry(scale);
    let buffer = match el {
        OutputElement::Surface(s) => match s.underlying_storage(renderer) {
            Some(UnderlyingStorage::Wayland(b)) => {
                if let Ok(d) = get_dmabuf(b) {
                    Buffer::Dmabuf(crate::dmabuf::from_format(d.format()))
                } else if let Ok(px) = get_single_pixel_buffer(b) {
                    Buffer::SinglePixel(px.rgba32f())
                } else {
                    Buffer::Shm
                }
            }
            _ => Buffer::Shm,
        },
        OutputElement::Solid(s) => {
            let c = s.color();
            Buffer::SinglePixel([c.r(), c.g(), c.b(), c.a()])
        }
        _ => Buffer::Internal,
    };
    let transform = el.transform();
    let src = transform.transform_size(el.src().size);
    let src: Size<i32, Physical> = (src.w.round() as i32, src.h.round() as i32).into();
    let opaque = el
        .opaque_regions(scale)
        .iter()
        .any(|r| r.size == geo.size && r.loc == (0, 0).into());
    Element {
        id: hash_id(el.id()),
        role: if el.kind() == Kind::Cursor {
            Role::Cursor
        } else {
            Role::Surface
        },
        buffer,
        position: (geo.loc.x, geo.loc.y),
        size: (geo.size.w, geo.size.h),
        scaled: matches!(buffer, Buffer::Dmabuf(_) | Buffer::Shm) && src != geo.size,
        rotation: rotation_of(transform),
        opaque,
        alpha: el.alpha(),
        scanout_failures: 0,
    }
}

/// Whether the renderer draws an element the plan placed there. Elements on
/// real planes are not drawn by the renderer on KMS; headless has no planes, so
/// it draws everything but what the background hides.
pub fn drawn(placement: Placement) -> bool {
    !matches!(placement, Placement::Background | Placement::Hidden)
}

/// One frame of an output as every backend draws it: what the policy planned,
/// the elements the renderer still draws (not a background taken as the clear
/// colour), and the clear colour.
pub struct PlannedFrame<R: ImportAll + ImportMem + DecorationRenderer> {
    pub frame: Frame,
    pub elements: Vec<OutputElement<R>>,
    pub clear: Color32F,
}

/// Lays out `output` (with the pointer in front when `cursor`) and runs the
/// plane policy over it.
pub fn plan_output<R>(
    state: &Tessera,
    renderer: &mut R,
    output: &Output,
    decorations: &DecorationPrograms,
    size: Size<i32, Physical>,
    cursor: bool,
) -> PlannedFrame<R>
where
    R: Renderer + ImportAll + ImportMem + DecorationRenderer + 'static,
    R::TextureId: Send + Clone + Texture + 'static,
{
    // Room for a window's surface and decorations each, so that building the
    // frame does not grow the list (and copy its large elements) as it goes.
    let room = 2 * state.space.elements().size_hint().0 + 8;
    let mut elements = Vec::with_capacity(room);
    if cursor {
        elements.extend(crate::render::cursor_elements(state, renderer, output));
    }
    crate::render::output_elements(state, renderer, output, decorations, &mut elements);
    let scale = output.current_scale().fractional_scale();
    let mut described = describe(&elements, renderer, scale);
    let name = output.name();
    for e in &mut described {
        e.scanout_failures = state.scanout.failures_of(&name, e.id);
    }
    let frame = state.scanout.plan((size.w, size.h), described);
    let elements: Vec<_> = elements
        .into_iter()
        .zip(&frame.plan.placements)
        .filter(|(_, (_, placement))| drawn(*placement))
        .map(|(e, _)| e)
        .collect();
    // The renderer's filter is state that outlives the frame: set it for this one.
    let filter = crate::render::frame_filter(&elements, Scale::from(scale));
    let _ = renderer.upscale_filter(filter);
    let _ = renderer.downscale_filter(filter);
    let clear = frame.plan.clear_colour.map_or_else(
        || crate::render::clear_colour(state),
        |[r, g, b, a]| Color32F::new(r, g, b, a),
    );
    PlannedFrame {
        frame,
        elements,
        clear,
    }
}

impl Tessera {
    /// Plans frames against a named capability table. Headless only: a KMS
    /// device reports its own planes.
    /// `name` is a built-in table, or a table file ending in `.toml`.
    pub fn simulate_planes(&mut self, name: &str) -> Result<(), String> {
        let caps = if name.ends_with(".toml") {
            let file: planes::file::TableFile =
                tessera_config::load(std::path::Path::new(name)).map_err(|e| e.to_string())?;
            tracing::info!(
                table = name,
                driver = file.driver,
                "simulating planes from a file"
            );
            file.caps()
        } else {
            let Some(table) = planes::table_by_name(name) else {
                let known: Vec<&str> = planes::TABLES.iter().map(|t| t.name).collect();
                return Err(format!(
                    "unknown plane table `{name}` (known: {}, or a FILE.toml)",
                    known.join(", ")
                ));
            };
            tracing::info!(table = name, about = table.about, "simulating planes");
            (table.build)()
        };
        self.scanout = Scanout::new(caps, format!("simulated:{name}"), self.scanout.switches);
        self.needs_redraw = true;
        Ok(())
    }

    /// Sends every surface that asked for dmabuf feedback what the policy says
    /// now; smithay sends nothing when the answer did not change.
    pub fn refresh_dmabuf_feedback(&mut self) {
        if !self.scanout.take_feedback_stale() {
            return;
        }
        let mut asks: Vec<(u64, SurfaceDmabufFeedbackState)> = Vec::new();
        let mut collect = |root: &WlSurface| {
            with_surface_tree_downward(
                root,
                (),
                |_, _, _| TraversalAction::DoChildren(()),
                |surface, states, _| {
                    if let Some(fb) = SurfaceDmabufFeedbackState::from_states(states) {
                        asks.push((surface_id(surface), fb.clone()));
                    }
                },
                |_, _, _| true,
            );
        };
        for window in self.space.elements() {
            if let Some(t) = window.toplevel() {
                collect(t.wl_surface());
            }
        }
        for output in self.space.outputs() {
            for layer in layer_map_for_output(output).layers() {
                collect(layer.wl_surface());
            }
        }
        for (id, state) in asks {
            let answer = self
                .scanout
                .feedback_for_id(id, &self.dmabuf.render_formats);
            if let Some(feedback) = self.dmabuf.feedback(&answer) {
                state.set_feedback(&feedback);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(id: u64, buffer: Buffer, size: (i32, i32)) -> Element {
        Element::surface(id, buffer, (0, 0), size)
    }

    #[test]
    fn counters_sum_placements_and_keep_the_last_frame() {
        let mut s = Scanout::without_planes(Switches::default());
        let out = (100, 50);
        let frame = s.plan(
            out,
            vec![
                element(1, Buffer::Shm, (10, 10)),
                element(2, Buffer::SinglePixel([0.0, 0.0, 1.0, 1.0]), out),
                element(3, Buffer::Shm, out),
            ],
        );
        s.record("Virtual-1", &frame);
        s.record("Virtual-1", &frame);
        let r = s.report();
        let c = &r.outputs[0].counters;
        assert_eq!((c.frames, c.frames_composited), (2, 2));
        assert_eq!((c.composited, c.background, c.hidden), (2, 2, 2));
        assert_eq!(c.reasons.get("no-plane"), Some(&2));
        assert_eq!(r.outputs[0].last_frame.len(), 3);
        assert_eq!(r.outputs[0].clear_colour, Some([0.0, 0.0, 1.0, 1.0]));
        let text = r.to_text();
        assert!(text.contains("background (clear colour)"), "{text}");
        assert!(text.contains("composited (no-plane)"), "{text}");
        let back: PlanesReport = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn feedback_is_stale_only_when_an_answer_can_have_changed() {
        let mut s = Scanout::without_planes(Switches::default());
        let mut e = element(4, Buffer::Shm, (10, 10));
        let frame = s.plan((100, 50), vec![e.clone()]);
        s.record("A", &frame);
        assert!(s.take_feedback_stale(), "first frame");
        s.record("A", &frame);
        assert!(!s.take_feedback_stale(), "the same frame again");
        e.position = (20, 0);
        let frame = s.plan((100, 50), vec![e]);
        s.record("A", &frame);
        assert!(s.take_feedback_stale(), "moved");
        s.switches.direct = !s.switches.direct;
        assert!(s.take_feedback_stale(), "a switch changed");
        assert!(!s.take_feedback_stale());
        let frame = s.plan((100, 50), Vec::new());
        s.record("A", &frame);
        assert!(s.take_feedback_stale(), "no longer shown");
    }

    #[test]
    fn straddling_elements_get_the_render_feedback_only() {
        let caps = (planes::table_by_name("amd").unwrap().build)();
        let mut s = Scanout::new(caps, "simulated:amd".into(), Switches::default());
        let render: FormatSet = s.caps.planes[0].formats.clone();
        let mut e = element(9, Buffer::Shm, (100, 50));
        let frame = s.plan((100, 50), vec![e.clone()]);
        s.record("A", &frame);
        assert!(s.feedback_for_id(9, &render).has_scanout());
        e.position = (50, 0);
        let frame = s.plan((100, 50), vec![e]);
        s.record("A", &frame);
        assert!(!s.feedback_for_id(9, &render).has_scanout());
        assert!(!s.feedback_for_id(12345, &render).has_scanout());
    }
}
