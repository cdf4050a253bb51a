//! Windows' elements, kept from one frame to the next while they stay the same.
//!
//! Building a window's elements (smithay's `Window::render_elements`) looks up
//! its popups, and for every surface takes its lock, finds its texture and
//! snapshots its damage. With 16 windows of which one changes, that was the
//! largest share of a frame's CPU time (perf of `cargo xtask bench compositor`,
//! the one-change case). A window's elements only change when a surface of its
//! tree commits, when a popup of it commits or goes away, or when it is drawn
//! somewhere else; so they are kept and handed out again until then.
//!
//! What invalidates an entry is told, not checked: checking every surface of
//! every window each frame (an earlier attempt) cost as much as building. So:
//! - any commit in a window's tree forgets that window (`forget`), before the
//!   commit's buffer replaces the one the kept elements show, so the old
//!   buffer goes back as early as it did before;
//! - a popup's commit, and anything destroyed, forgets everything (`clear`):
//!   rare, and the window they belonged to may no longer be findable;
//! - a window with subsurfaces is never kept: `wl_subsurface.destroy` unmaps a
//!   subsurface at once, with no commit and no surface destroyed;
//! - an entry records where the window was drawn, the scale and the renderer
//!   context, and a frame that draws it elsewhere builds it again;
//! - entries a frame of their output did not use are dropped at its end, so a
//!   window no longer shown holds no buffer of its client.

use std::any::Any;
use std::cell::OnceCell;
use std::rc::Rc;

use smithay::backend::renderer::element::surface::WaylandSurfaceRenderElement;
use smithay::backend::renderer::element::{
    AsRenderElements, Element, Id, Kind, RenderElement, UnderlyingStorage,
};
use smithay::backend::renderer::utils::{CommitCounter, DamageSet, OpaqueRegions};
use smithay::backend::renderer::{ErasedContextId, ImportAll, Renderer, Texture};
use smithay::desktop::Window;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::utils::{Buffer, Physical, Point, Rectangle, Scale, Transform};

use super::planes;

/// A surface element that frames share: the same snapshot of the surface,
/// drawn and damage-checked exactly as when it was built.
pub struct SharedSurface<R: Renderer>(Rc<Snapshot<R>>);

struct Snapshot<R: Renderer> {
    element: WaylandSurfaceRenderElement<R>,
    /// The plane policy's description of the snapshot at one output scale.
    /// Everything in it is the snapshot's own (its buffer, place, size and
    /// opacity), so a kept element is described once, not once per frame.
    described: OnceCell<(Scale<f64>, planes::Element)>,
}

impl<R: Renderer> SharedSurface<R> {
    pub fn new(element: WaylandSurfaceRenderElement<R>) -> Self {
        Self(Rc::new(Snapshot {
            element,
            described: OnceCell::new(),
        }))
    }

    /// The description `describe` gives at `scale`, made once per scale seen
    /// first (an output's scale rarely changes; when it does, the window's
    /// elements are built again anyway, see `Entry::scale`).
    pub fn described(
        &self,
        scale: Scale<f64>,
        describe: impl FnOnce() -> planes::Element,
    ) -> planes::Element {
        match self.0.described.get() {
            Some((at, described)) if *at == scale => described.clone(),
            Some(_) => describe(),
            None => self
                .0
                .described
                .get_or_init(|| (scale, describe()))
                .1
                .clone(),
        }
    }
}

impl<R: Renderer> Clone for SharedSurface<R> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<R> Element for SharedSurface<R>
where
    R: Renderer + ImportAll,
    R::TextureId: Texture + 'static,
{
    fn id(&self) -> &Id {
        self.0.element.id()
    }
    fn current_commit(&self) -> CommitCounter {
        self.0.element.current_commit()
    }
    fn location(&self, scale: Scale<f64>) -> Point<i32, Physical> {
        self.0.element.location(scale)
    }
    fn src(&self) -> Rectangle<f64, Buffer> {
        self.0.element.src()
    }
    fn transform(&self) -> Transform {
        self.0.element.transform()
    }
    fn geometry(&self, scale: Scale<f64>) -> Rectangle<i32, Physical> {
        self.0.element.geometry(scale)
    }
    fn damage_since(
        &self,
        scale: Scale<f64>,
        commit: Option<CommitCounter>,
    ) -> DamageSet<i32, Physical> {
        self.0.element.damage_since(scale, commit)
    }
    fn opaque_regions(&self, scale: Scale<f64>) -> OpaqueRegions<i32, Physical> {
        self.0.element.opaque_regions(scale)
    }
    fn alpha(&self) -> f32 {
        self.0.element.alpha()
    }
    fn kind(&self) -> Kind {
        self.0.element.kind()
    }
}

impl<R> RenderElement<R> for SharedSurface<R>
where
    R: Renderer + ImportAll,
    R::TextureId: Texture + 'static,
{
    fn draw(
        &self,
        frame: &mut R::Frame<'_, '_>,
        src: Rectangle<f64, Buffer>,
        dst: Rectangle<i32, Physical>,
        damage: &[Rectangle<i32, Physical>],
        opaque_regions: &[Rectangle<i32, Physical>],
    ) -> Result<(), R::Error> {
        self.0.element.draw(frame, src, dst, damage, opaque_regions)
    }
    fn underlying_storage(&self, renderer: &mut R) -> Option<UnderlyingStorage<'_>> {
        self.0.element.underlying_storage(renderer)
    }
}

struct Entry {
    /// The window's root surface.
    root: WlSurface,
    location: Point<i32, Physical>,
    scale: Scale<f64>,
    /// `Vec<SharedSurface<R>>` for the renderer that built them.
    elements: Box<dyn Any>,
    used: bool,
}

/// The windows one output keeps for one renderer context.
///
/// A list in the order the last frame drew them, not a map: a frame asks for
/// the windows in the same order as the one before, so each is found where
/// the search begins, without hashing a surface id per window per frame.
struct OutputEntries {
    output: String,
    context: ErasedContextId,
    windows: Vec<Entry>,
    /// Where the next window of this frame is looked for first.
    next: usize,
}

impl OutputEntries {
    fn find(&self, root: &WlSurface) -> Option<usize> {
        let (earlier, later) = self.windows.split_at(self.next.min(self.windows.len()));
        later
            .iter()
            .position(|e| &e.root == root)
            .map(|at| at + earlier.len())
            .or_else(|| earlier.iter().position(|e| &e.root == root))
    }
}

/// Kept elements, per output and renderer context, then per window.
#[derive(Default)]
pub struct KeptElements {
    outputs: Vec<OutputEntries>,
    /// Windows' elements built (not kept) since start, for tests.
    built: u64,
}

impl KeptElements {
    fn entries(&mut self, output: &str, context: &ErasedContextId) -> &mut OutputEntries {
        let at = match self
            .outputs
            .iter()
            .position(|o| o.output == output && &o.context == context)
        {
            Some(at) => at,
            None => {
                self.outputs.push(OutputEntries {
                    output: output.to_owned(),
                    context: context.clone(),
                    windows: Vec::new(),
                    next: 0,
                });
                self.outputs.len() - 1
            }
        };
        &mut self.outputs[at]
    }

    /// A frame of `output` drawn in `context` begins: its entries count as
    /// unused until drawn.
    pub fn begin(&mut self, output: &str, context: &ErasedContextId) {
        let entries = self.entries(output, context);
        entries.windows.iter_mut().for_each(|e| e.used = false);
        entries.next = 0;
    }

    /// That frame is laid out: what it did not draw is let go.
    pub fn end(&mut self, output: &str, context: &ErasedContextId) {
        self.entries(output, context).windows.retain(|e| e.used);
    }

    /// Adds to `out` the elements of `window` drawn at `location` on `output`:
    /// the kept ones if nothing has invalidated them, else new ones, kept when
    /// `keep`.
    #[allow(clippy::too_many_arguments)]
    pub fn window_elements<R, E>(
        &mut self,
        (output, context): (&str, &ErasedContextId),
        renderer: &mut R,
        window: &Window,
        location: Point<i32, Physical>,
        scale: Scale<f64>,
        keep: bool,
        out: &mut Vec<E>,
    ) where
        R: Renderer + ImportAll + 'static,
        R::TextureId: Clone + Texture + 'static,
        E: From<SharedSurface<R>>,
    {
        let root = window.toplevel().map(|t| t.wl_surface());
        if let Some(root) = root {
            let entries = self.entries(output, context);
            if let Some(at) = entries.find(root) {
                entries.next = at + 1;
                let entry = &mut entries.windows[at];
                let same = entry.location == location && entry.scale == scale;
                if let Some(kept) = entry.elements.downcast_ref::<Vec<SharedSurface<R>>>()
                    && same
                {
                    entry.used = true;
                    out.extend(kept.iter().cloned().map(E::from));
                    return;
                }
                entries.windows.remove(at);
                entries.next = at;
            }
        }
        self.built += 1;
        let built: Vec<SharedSurface<R>> = window
            .render_elements::<WaylandSurfaceRenderElement<R>>(renderer, location, scale, 1.0)
            .into_iter()
            .map(SharedSurface::new)
            .collect();
        out.extend(built.iter().cloned().map(E::from));
        if let (true, Some(root)) = (keep, root) {
            let entries = self.entries(output, context);
            let at = entries.next.min(entries.windows.len());
            entries.windows.insert(
                at,
                Entry {
                    root: root.clone(),
                    location,
                    scale,
                    elements: Box::new(built),
                    used: true,
                },
            );
            entries.next = at + 1;
        }
    }

    /// Lets go of the window whose root surface is `root` (a surface of its
    /// tree committed).
    pub fn forget(&mut self, root: &WlSurface) {
        for entries in &mut self.outputs {
            entries.windows.retain(|e| &e.root != root);
        }
    }

    /// Lets go of everything `output` kept (locked, gone, or not shown).
    pub fn forget_output(&mut self, output: &str) {
        self.outputs.retain(|o| o.output != output);
    }

    /// Lets go of everything.
    pub fn clear(&mut self) {
        self.outputs.clear();
    }

    /// How many times a window's elements were built rather than kept.
    pub fn built(&self) -> u64 {
        self.built
    }

    /// How many windows' elements `output` keeps.
    pub fn kept(&self, output: &str) -> usize {
        self.outputs
            .iter()
            .filter(|o| o.output == output)
            .map(|o| o.windows.len())
            .sum()
    }
}
