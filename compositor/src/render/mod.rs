//! What goes on an output, front to back, and the renderer-generic draw and
//! read-back used by every backend.

pub mod damage;
pub mod decoration;
pub mod kept;
pub mod llvmpipe;
pub mod planes;
pub mod shaders;
pub mod timing;

use smithay::backend::allocator::Fourcc;
use smithay::backend::renderer::element::memory::MemoryRenderBufferRenderElement;
use smithay::backend::renderer::element::solid::{SolidColorBuffer, SolidColorRenderElement};
use smithay::backend::renderer::element::surface::{
    WaylandSurfaceRenderElement, render_elements_from_surface_tree,
};
use smithay::backend::renderer::element::{AsRenderElements, Element, Kind, render_elements};
use smithay::backend::renderer::{
    Color32F, ExportMem, ImportAll, ImportMem, Renderer, Texture, TextureFilter,
};
use smithay::desktop::Window;
use smithay::desktop::layer_map_for_output;
use smithay::output::Output;
use smithay::reexports::wayland_protocols::xdg::shell::server::xdg_toplevel;
use smithay::utils::{Buffer, Physical, Point, Rectangle, Scale, Size, Transform};
use smithay::wayland::compositor::with_states;
use smithay::wayland::shell::wlr_layer::Layer;
use smithay::wayland::shell::xdg::XdgToplevelSurfaceData;

use crate::cursor::CursorElements;
use crate::shell::meta;
use crate::state::Tessera;
use decoration::{Decoration, DecorationPrograms, DecorationRenderer, Shape};
use kept::SharedSurface;

render_elements! {
    pub OutputElement<R> where R: ImportAll + ImportMem + DecorationRenderer;
    Surface = SharedSurface<R>,
    Solid = SolidColorRenderElement,
    Decoration = Decoration,
    Cursor = MemoryRenderBufferRenderElement<R>,
}

impl<R: ImportAll + ImportMem + DecorationRenderer> std::fmt::Debug for OutputElement<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputElement::Surface(_) => f.write_str("Surface"),
            OutputElement::Solid(_) => f.write_str("Solid"),
            OutputElement::Decoration(_) => f.write_str("Decoration"),
            OutputElement::Cursor(_) => f.write_str("Cursor"),
            OutputElement::_GenericCatcher(_) => f.write_str("Other"),
        }
    }
}

// Layer, lock and cursor surfaces are built every frame (windows' elements are
// kept, see `kept`): few, and usually the ones that change.
impl<R> From<WaylandSurfaceRenderElement<R>> for OutputElement<R>
where
    R: ImportAll + ImportMem + DecorationRenderer,
{
    fn from(element: WaylandSurfaceRenderElement<R>) -> Self {
        OutputElement::Surface(SharedSurface::new(element))
    }
}

/// The background colour as linear RGBA.
pub fn clear_colour(state: &Tessera) -> Color32F {
    let [r, g, b] = state.config.renderer.background.0;
    Color32F::new(
        f32::from(r) / 255.0,
        f32::from(g) / 255.0,
        f32::from(b) / 255.0,
        1.0,
    )
}

/// Everything visible on `output`, front to back, added to `elements`.
///
/// While locked, that is the output's lock surface and nothing else, whatever the
/// state of the windows: a lock that leaked a frame of the session would be no lock.
pub fn output_elements<R>(
    state: &Tessera,
    renderer: &mut R,
    output: &Output,
    programs: &DecorationPrograms,
    elements: &mut Vec<OutputElement<R>>,
) where
    R: Renderer + ImportAll + ImportMem + DecorationRenderer + 'static,
    R::TextureId: Clone + Texture + 'static,
{
    let Some(output_geo) = state.space.output_geometry(output) else {
        return;
    };
    let scale = Scale::from(output.current_scale().fractional_scale());
    let name = output.name();
    let mut kept = state.kept.borrow_mut();

    if state.lock.is_locked() {
        kept.forget_output(&name);
        if let Some(lock) = state.lock.surface_for(output) {
            elements.extend(render_elements_from_surface_tree(
                renderer,
                lock.wl_surface(),
                (0, 0),
                scale,
                1.0,
                Kind::Unspecified,
            ));
        }
        return;
    }

    let layers = layer_map_for_output(output);
    let push_layers = |renderer: &mut R, elements: &mut Vec<OutputElement<R>>, layer: Layer| {
        for surface in layers.layers_on(layer).rev() {
            let Some(geo) = layers.layer_geometry(surface) else {
                continue;
            };
            let loc = geo.loc.to_physical_precise_round(scale);
            elements.extend(surface.render_elements(renderer, loc, scale, 1.0));
        }
    };

    push_layers(renderer, elements, Layer::Overlay);

    // A fullscreen window on this output covers everything but overlays.
    let fullscreen = state
        .space
        .elements()
        .rev()
        .find(|w| meta(w, |m| m.fullscreen_on.as_ref() == Some(output)));
    // Borrowed, not cloned: a clone and a drop per window per frame is two
    // atomic operations on memory the frame otherwise need not touch.
    let windows: Vec<&Window> = match fullscreen {
        Some(w) => vec![w],
        None => {
            push_layers(renderer, elements, Layer::Top);
            state.space.elements_for_output(output).rev().collect()
        }
    };
    let focused = state.shell.focus.front();
    let context = renderer.context_id().erased();
    kept.begin(&name, &context);
    let dim = state.config.renderer.dialog_dim.0;
    // Once per frame rather than once per window: the surfaces with a dialog open.
    let dialog_parents: Vec<_> = if dim > 0.0 && !state.shell.parented.is_empty() {
        state
            .space
            .elements()
            .filter_map(|w| w.toplevel().and_then(|t| t.parent()))
            .collect()
    } else {
        Vec::new()
    };
    for &window in &windows {
        let Some(loc) = state.space.element_location(window) else {
            continue;
        };
        let extent = meta(window, |m| m.extent);
        // A window's decoration ids are made the first frame that needs them.
        let ids = || meta(window, |m| m.decoration_ids());
        let geometry = match extent {
            // As of the window's last commit, which is what changes it.
            Some(extent) if !extent.has_subsurfaces() => extent.geometry(),
            _ => window.geometry(),
        };
        let render_loc = (loc - geometry.loc - output_geo.loc).to_physical_precise_round(scale);
        let frame = Rectangle::new(loc - output_geo.loc, geometry.size);
        let has_dialog = window
            .toplevel()
            .is_some_and(|t| dialog_parents.contains(t.wl_surface()));
        if has_dialog {
            let shape = Shape::Dim { strength: dim };
            elements.push(OutputElement::Decoration(Decoration::new(
                ids().1,
                frame.to_physical_precise_round(scale),
                shape,
                programs.for_shape(&shape),
            )));
        }
        let keep = extent.is_some_and(|e| !e.has_subsurfaces());
        kept.window_elements(
            (&name, &context),
            renderer,
            window,
            render_loc,
            scale,
            keep,
            elements,
        );
        let width = state.config.renderer.focus_border_width.0 as i32;
        if width > 0 && focused == Some(window) && is_floating(window) {
            // Outside the window, so it never covers what the client drew.
            let ring = Rectangle::new(
                frame.loc - Point::from((width, width)),
                frame.size + Size::from((2 * width, 2 * width)),
            );
            let [r, g, b] = state.config.renderer.focus_border.0;
            let shape = Shape::Border {
                width: (f64::from(width) * scale.x).round() as i32,
                rgba: [
                    f32::from(r) / 255.0,
                    f32::from(g) / 255.0,
                    f32::from(b) / 255.0,
                    1.0,
                ],
            };
            elements.push(OutputElement::Decoration(Decoration::new(
                ids().0,
                ring.to_physical_precise_round(scale),
                shape,
                programs.for_shape(&shape),
            )));
        }
    }
    if fullscreen.is_some() {
        // Black behind a fullscreen client that does not cover the output.
        let buffer = SolidColorBuffer::new(output_geo.size, [0.0, 0.0, 0.0, 1.0]);
        elements.push(OutputElement::Solid(SolidColorRenderElement::from_buffer(
            &buffer,
            (0, 0),
            scale,
            1.0,
            Kind::Unspecified,
        )));
    } else {
        push_layers(renderer, elements, Layer::Bottom);
        push_layers(renderer, elements, Layer::Background);
    }
    kept.end(&name, &context);
}

/// The pointer on `output`, to go in front of everything: nothing while it is
/// hidden or too far off this output to reach into it.
pub fn cursor_elements<R>(
    state: &Tessera,
    renderer: &mut R,
    output: &Output,
) -> Vec<OutputElement<R>>
where
    R: Renderer + ImportAll + ImportMem + DecorationRenderer,
    R::TextureId: Send + Clone + Texture + 'static,
{
    let Some(geo) = state.space.output_geometry(output) else {
        return Vec::new();
    };
    let at = state.pointer_location - geo.loc.to_f64();
    // No cursor image is larger than this, whatever its hotspot.
    let reach = 512.0;
    let (w, h) = (f64::from(geo.size.w), f64::from(geo.size.h));
    if at.x < -reach || at.y < -reach || at.x > w + reach || at.y > h + reach {
        return Vec::new();
    }
    let scale = Scale::from(output.current_scale().fractional_scale());
    let millis = std::time::Duration::from(state.clock.now()).as_millis() as u64;
    match state
        .cursor
        .elements(renderer, &state.cursor_status, at, scale, millis)
    {
        None => Vec::new(),
        Some(CursorElements::Surface(v)) => v.into_iter().map(OutputElement::from).collect(),
        Some(CursorElements::Named(e)) => vec![OutputElement::Cursor(*e)],
    }
}

/// Neither maximized nor fullscreen: a window with edges of its own.
fn is_floating(window: &Window) -> bool {
    window.toplevel().is_some() && !is_tiled(window) && meta(window, |m| m.fullscreen_on.is_none())
}

/// Whether the client's current state is maximized or fullscreen.
pub fn is_tiled(window: &Window) -> bool {
    let Some(toplevel) = window.toplevel() else {
        return false;
    };
    // Read in place: `current_state` clones the whole state, capability set
    // included, which showed in profiles for a check made every frame.
    with_states(toplevel.wl_surface(), |states| {
        states
            .data_map
            .get::<XdgToplevelSurfaceData>()
            .and_then(|data| data.lock().ok())
            .is_some_and(|data| {
                let states = &data.current.states;
                states.contains(xdg_toplevel::State::Maximized)
                    || states.contains(xdg_toplevel::State::Fullscreen)
            })
    })
}

/// Whether a texture's `src` lands on `dst` texel for pixel: the same size once
/// turned by `transform`, from a whole-texel origin. Sampled there, nearest and
/// linear filtering give the same pixels.
pub fn pixel_exact(
    src: Rectangle<f64, Buffer>,
    transform: Transform,
    dst: Rectangle<i32, Physical>,
) -> bool {
    let size = transform.transform_size(src.size);
    src.loc.x.fract() == 0.0
        && src.loc.y.fract() == 0.0
        && size.w == f64::from(dst.size.w)
        && size.h == f64::from(dst.size.h)
}

/// The texture filter for a frame of `elements`: nearest when every texture in
/// it is drawn pixel for pixel, linear as soon as one is scaled or cropped at a
/// fraction. Nearest is then exact and cheaper: on llvmpipe it cut the
/// compositor benchmark's frame by a quarter, since bilinear sampling is most of
/// a software rasterizer's work.
pub fn frame_filter<R>(elements: &[OutputElement<R>], scale: Scale<f64>) -> TextureFilter
where
    R: Renderer + ImportAll + ImportMem + DecorationRenderer,
    R::TextureId: Clone + Texture + 'static,
{
    let textured_exact = |e: &dyn Element| pixel_exact(e.src(), e.transform(), e.geometry(scale));
    let exact = elements.iter().all(|e| match e {
        OutputElement::Surface(s) => textured_exact(s),
        OutputElement::Cursor(c) => textured_exact(c),
        // Solid colours and decorations sample no texture.
        OutputElement::Solid(_) | OutputElement::Decoration(_) => true,
        OutputElement::_GenericCatcher(_) => false,
    });
    if exact {
        TextureFilter::Nearest
    } else {
        TextureFilter::Linear
    }
}

/// What [`draw`] did: the damage, empty when nothing changed, and the point
/// at which the renderer has finished drawing it (GL renders asynchronously).
pub use damage::Rendered as Drawn;

/// An output's mode as the renderer needs it: the mode's size, the scale
/// and the transform.
pub type RenderMode = (Size<i32, Physical>, Scale<f64>, Transform);

/// The mode `output` renders with now; `None` before it has one.
pub fn render_mode(output: &Output) -> Option<RenderMode> {
    let mode = output.current_mode()?;
    Some((
        mode.size,
        Scale::from(output.current_scale().fractional_scale()),
        output.current_transform(),
    ))
}

/// Renders what changed in `elements` (front to back) into `framebuffer`,
/// which holds the frame drawn `age` frames ago.
pub fn draw<R>(
    renderer: &mut R,
    framebuffer: &mut R::Framebuffer<'_>,
    tracker: &mut damage::DamageTracker,
    (size, scale, transform): RenderMode,
    age: usize,
    elements: &[OutputElement<R>],
    clear: Color32F,
) -> Result<Drawn, String>
where
    R: Renderer + ImportAll + ImportMem + DecorationRenderer,
    R::TextureId: Clone + Texture + 'static,
{
    tracker
        .render(
            renderer,
            framebuffer,
            size,
            scale,
            transform,
            age,
            elements,
            clear,
        )
        .map_err(|e| format!("render failed: {e:?}"))
}

/// Reads the framebuffer back as tightly packed RGBA8.
pub fn read_rgba<R>(
    renderer: &mut R,
    framebuffer: &R::Framebuffer<'_>,
    size: Size<i32, Physical>,
) -> Result<Vec<u8>, String>
where
    R: Renderer + ExportMem,
{
    let region = Rectangle::from_size((size.w, size.h).into());
    let mapping = renderer
        .copy_framebuffer(framebuffer, region, Fourcc::Abgr8888)
        .map_err(|e| format!("read-back failed: {e:?}"))?;
    let bytes = renderer
        .map_texture(&mapping)
        .map_err(|e| format!("read-back map failed: {e:?}"))?;
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(x: f64, y: f64, w: f64, h: f64) -> Rectangle<f64, Buffer> {
        Rectangle::new((x, y).into(), (w, h).into())
    }

    fn dst(w: i32, h: i32) -> Rectangle<i32, Physical> {
        Rectangle::new((17, 5).into(), (w, h).into())
    }

    #[test]
    fn only_texel_for_pixel_draws_are_exact() {
        let t = Transform::Normal;
        assert!(pixel_exact(src(0.0, 0.0, 400.0, 300.0), t, dst(400, 300)));
        // A viewporter crop from a whole texel is still exact.
        assert!(pixel_exact(src(8.0, 4.0, 64.0, 64.0), t, dst(64, 64)));
        // Turned a quarter, the buffer's width is the output's height.
        assert!(pixel_exact(
            src(0.0, 0.0, 300.0, 400.0),
            Transform::_90,
            dst(400, 300)
        ));
        assert!(!pixel_exact(src(0.0, 0.0, 300.0, 400.0), t, dst(400, 300)));
        // Buffer scale 2 on a scale 1 output, a viewporter scale, a half-texel crop.
        assert!(!pixel_exact(src(0.0, 0.0, 800.0, 600.0), t, dst(400, 300)));
        assert!(!pixel_exact(src(0.0, 0.0, 64.0, 64.0), t, dst(96, 96)));
        assert!(!pixel_exact(src(0.5, 0.0, 64.0, 64.0), t, dst(64, 64)));
    }
}
