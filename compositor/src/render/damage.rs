//! Output damage: what must be redrawn in a buffer that holds an older frame,
//! and the draw that redraws only that.
//!
//! smithay's `OutputDamageTracker` is general: every frame it hashes every
//! element's id into fresh maps, works out each element's visible area
//! against every opaque region in front of it, and rebuilds its state from
//! scratch. In a session most frames are the same scene as the last one with
//! one or two surfaces committed, and that bookkeeping was most of what such
//! a frame cost (more than drawing the change). This tracker compares each
//! element with the one drawn at the same place in the stack last frame: the
//! same id, geometry, source, transform and opacity there means that only
//! the element's own damage since its last drawn commit is new. Anything
//! else (a window mapped, moved, raised, resized or gone) damages the old
//! and the new geometry, which is what a change in the stack needs.
//!
//! The damage an element is drawn with never overlaps itself: a translucent
//! element drawn twice over the same pixel in one frame would be blended
//! twice. The frame's damage may overlap (clearing twice is harmless), since
//! cutting sixteen overlapping windows into disjoint pieces for the whole
//! frame leaves each window drawn as a dozen slivers.

use std::collections::VecDeque;

use smithay::backend::renderer::element::{Id, RenderElement};
use smithay::backend::renderer::sync::SyncPoint;
use smithay::backend::renderer::utils::CommitCounter;
use smithay::backend::renderer::{Color32F, Frame, Renderer};
use smithay::utils::{Buffer, Physical, Rectangle, Scale, Size, Transform};

type Rect = Rectangle<i32, Physical>;

/// Buffer ages beyond this get a full redraw: no swapchain keeps more.
const MAX_AGE: usize = 4;

/// Past this many rectangles the damage is drawn as its bounding box, as
/// keeping them apart costs quadratic time. Not fewer: sixteen overlapping
/// windows that all changed make about thirty pieces, and their bounding
/// box can be most of the output (a cascade in each corner).
const MAX_RECTS: usize = 512;

/// An element as it was drawn, at its place in the stack.
#[derive(Debug, Clone, PartialEq)]
struct Drawn {
    id: Id,
    commit: CommitCounter,
    geometry: Rect,
    src: Rectangle<f64, Buffer>,
    transform: Transform,
    alpha: f32,
}

impl Drawn {
    /// The same element, drawn the same way: only its own damage is new.
    fn same_place(&self, other: &Drawn) -> bool {
        self.id == other.id
            && self.geometry == other.geometry
            && self.src == other.src
            && self.transform == other.transform
            && self.alpha == other.alpha
    }
}

/// What the output looked like: its mode and the last frame's elements.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Mode {
    size: Size<i32, Physical>,
    scale: Scale<f64>,
    transform: Transform,
    clear: [u32; 4],
}

/// What a render did.
pub struct Rendered {
    /// Empty when nothing changed and nothing was drawn.
    pub damage: Vec<Rect>,
    /// When the renderer has finished drawing it.
    pub sync: SyncPoint,
}

/// Damage and redraw for one output's buffers.
#[derive(Debug, Default)]
pub struct DamageTracker {
    mode: Option<Mode>,
    /// Front to back, every element of the last frame.
    last: Vec<Drawn>,
    /// The opaque regions of the last frame, in output coordinates.
    last_opaque: Vec<Rect>,
    /// The new damage of each of the last frames, newest first.
    history: VecDeque<Vec<Rect>>,
    // Kept between frames for their allocations.
    current: Vec<Drawn>,
    opaque: Vec<Rect>,
    opaque_ends: Vec<usize>,
    matched: Vec<bool>,
}

impl DamageTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the buffers' contents: the next frame is drawn whole.
    pub fn reset(&mut self) {
        self.mode = None;
        self.last.clear();
        self.last_opaque.clear();
        self.history.clear();
    }

    /// Draws `elements` (front to back) into `framebuffer`, which holds the
    /// frame drawn `age` frames ago (0: unknown contents).
    ///
    /// `size` is the output's mode and `transform` its transform, as the
    /// output has them: the frame is drawn turned back by it, so that it
    /// shows upright on the turned panel.
    #[allow(clippy::too_many_arguments)]
    pub fn render<R, E>(
        &mut self,
        renderer: &mut R,
        framebuffer: &mut R::Framebuffer<'_>,
        size: Size<i32, Physical>,
        scale: Scale<f64>,
        transform: Transform,
        age: usize,
        elements: &[E],
        clear: Color32F,
    ) -> Result<Rendered, R::Error>
    where
        R: Renderer,
        E: RenderElement<R>,
    {
        let transform = transform.invert();
        let output = Rect::from_size(transform.transform_size(size));
        let mode = Mode {
            size,
            scale,
            transform,
            clear: [clear.r(), clear.g(), clear.b(), clear.a()].map(f32::to_bits),
        };
        let damage = self.damage(mode, output, age, elements);
        if damage.is_empty() {
            // Commits with no damage still move the elements' commits on.
            std::mem::swap(&mut self.last, &mut self.current);
            std::mem::swap(&mut self.last_opaque, &mut self.opaque);
            return Ok(Rendered {
                damage,
                sync: SyncPoint::signaled(),
            });
        }
        let drawn = draw(
            renderer,
            framebuffer,
            (size, transform),
            &damage,
            elements,
            &self.current,
            (&self.opaque, &self.opaque_ends),
            clear,
        );
        match drawn {
            Ok(sync) => {
                std::mem::swap(&mut self.last, &mut self.current);
                std::mem::swap(&mut self.last_opaque, &mut self.opaque);
                Ok(Rendered { damage, sync })
            }
            Err(err) => {
                // The buffer may be half drawn: nothing in it can be trusted.
                self.reset();
                Err(err)
            }
        }
    }

    /// The damage of this frame against a buffer `age` frames old, clipped to
    /// the output. Fills `current` and `opaque`.
    fn damage<R, E>(&mut self, mode: Mode, output: Rect, age: usize, elements: &[E]) -> Vec<Rect>
    where
        R: Renderer,
        E: RenderElement<R>,
    {
        self.current.clear();
        self.opaque.clear();
        self.opaque_ends.clear();
        self.matched.clear();
        self.matched.resize(self.last.len(), false);
        let mut fresh: Vec<Rect> = Vec::new();
        let scale = mode.scale;

        for (index, element) in elements.iter().enumerate() {
            let geometry = element.geometry(scale);
            let now = Drawn {
                id: element.id().clone(),
                commit: element.current_commit(),
                geometry,
                src: element.src(),
                transform: element.transform(),
                alpha: element.alpha(),
            };
            match self.last.get(index) {
                Some(before) if before.same_place(&now) => {
                    self.matched[index] = true;
                    if before.commit != now.commit {
                        let at = geometry.loc;
                        fresh.extend(
                            element
                                .damage_since(scale, Some(before.commit))
                                .iter()
                                .filter_map(|d| {
                                    Rect::new(d.loc + at, d.size).intersection(geometry)
                                }),
                        );
                    }
                }
                _ => fresh.push(geometry),
            }
            self.opaque.extend(
                element
                    .opaque_regions(scale)
                    .iter()
                    .filter_map(|r| Rect::new(r.loc + geometry.loc, r.size).intersection(output)),
            );
            self.opaque_ends.push(self.opaque.len());
            self.current.push(now);
        }
        // Whatever is not where it was leaves its old place to be redrawn.
        fresh.extend(
            self.last
                .iter()
                .zip(&self.matched)
                .filter(|(_, matched)| !**matched)
                .map(|(before, _)| before.geometry),
        );
        // What an opaque region hid and no longer hides.
        if self.last_opaque != self.opaque {
            fresh.extend(Rect::subtract_rects_many(
                self.last_opaque.iter().copied(),
                self.opaque.iter().copied(),
            ));
        }
        fresh.retain_mut(|r| match r.intersection(output) {
            Some(clipped) => {
                *r = clipped;
                true
            }
            None => false,
        });
        if self.mode != Some(mode) {
            fresh = vec![output];
            self.history.clear();
            self.mode = Some(mode);
        }

        let mut damage = fresh.clone();
        if age == 0 || age - 1 > self.history.len() {
            damage = vec![output];
        } else {
            damage.extend(self.history.iter().take(age - 1).flatten().copied());
        }
        // A frame with nothing to draw leaves the buffers as they were, so it
        // has no place in their history.
        if !damage.is_empty() {
            self.history.push_front(fresh);
            self.history.truncate(MAX_AGE);
        }
        bounded(damage)
    }
}

/// The bounding box of `rects`, as the one rectangle to draw.
fn one_box(rects: Vec<Rect>) -> Vec<Rect> {
    let mut all = rects.into_iter();
    let first = all.next().unwrap_or_default();
    vec![all.fold(first, Rect::merge)]
}

/// Drops the rectangles another one holds, and makes too many one bounding
/// box.
fn bounded(mut rects: Vec<Rect>) -> Vec<Rect> {
    if rects.len() > MAX_RECTS {
        return one_box(rects);
    }
    let mut i = 0;
    while i < rects.len() {
        let r = rects[i];
        let held = rects
            .iter()
            .enumerate()
            .any(|(j, o)| j != i && o.contains_rect(r) && (o != &r || j < i));
        if held {
            rects.swap_remove(i);
        } else {
            i += 1;
        }
    }
    rects
}

/// The same area as `rects`, as rectangles that do not overlap.
fn disjoint(rects: Vec<Rect>) -> Vec<Rect> {
    if rects.len() <= 1 {
        return rects;
    }
    if rects.len() > MAX_RECTS {
        return one_box(rects);
    }
    // Largest first, so that what a larger one holds is dropped whole instead
    // of cutting the larger one into slivers around it.
    let mut rects = rects;
    rects.sort_unstable_by_key(|r| std::cmp::Reverse(i64::from(r.size.w) * i64::from(r.size.h)));
    let mut out: Vec<Rect> = Vec::with_capacity(rects.len());
    for rect in rects {
        if out.iter().any(|o| o.contains_rect(rect)) {
            continue;
        }
        if out.iter().any(|o| o.overlaps(rect)) {
            let pieces = Rect::subtract_rects_many_in_place(vec![rect], out.iter().copied());
            out.extend(pieces);
        } else {
            out.push(rect);
        }
    }
    if out.len() > MAX_RECTS {
        return one_box(out);
    }
    out
}

/// Clears the damage that no opaque region covers, then draws every element
/// that meets the damage, back to front, each clipped to what the opaque
/// elements in front of it leave showing.
#[allow(clippy::too_many_arguments)]
fn draw<R, E>(
    renderer: &mut R,
    framebuffer: &mut R::Framebuffer<'_>,
    (size, transform): (Size<i32, Physical>, Transform),
    damage: &[Rect],
    elements: &[E],
    drawn: &[Drawn],
    (opaque, opaque_ends): (&[Rect], &[usize]),
    clear: Color32F,
) -> Result<SyncPoint, R::Error>
where
    R: Renderer,
    E: RenderElement<R>,
{
    let mut frame = renderer.render(framebuffer, size, transform)?;
    let uncovered = Rect::subtract_rects_many(damage.iter().copied(), opaque.iter().copied());
    if !uncovered.is_empty() {
        frame.clear(clear, &uncovered)?;
    }
    let mut local: Vec<Rect> = Vec::new();
    let mut own_opaque: Vec<Rect> = Vec::new();
    for (index, element) in elements.iter().enumerate().rev() {
        let geometry = drawn[index].geometry;
        local.clear();
        local.extend(damage.iter().filter_map(|d| d.intersection(geometry)));
        if local.is_empty() {
            continue;
        }
        local = disjoint(local);
        let start = if index == 0 {
            0
        } else {
            opaque_ends[index - 1]
        };
        local = Rect::subtract_rects_many_in_place(local, opaque[..start].iter().copied());
        if local.is_empty() {
            continue;
        }
        for d in &mut local {
            d.loc -= geometry.loc;
        }
        own_opaque.clear();
        own_opaque.extend(opaque[start..opaque_ends[index]].iter().map(|r| {
            let mut r = *r;
            r.loc -= geometry.loc;
            r
        }));
        element.draw(&mut frame, drawn[index].src, geometry, &local, &own_opaque)?;
    }
    frame.finish()
}

#[cfg(test)]
#[path = "damage_tests.rs"]
mod tests;
