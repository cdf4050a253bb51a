//! The pointer's image: a client's cursor surface, or a named shape
//! (cursor-shape-v1, or the default arrow) from the configured xcursor theme,
//! drawn in front of everything at the pointer.
//!
//! The pointer shows from the first pointer event on, and (with
//! `hide_when_typing`) hides from a key press until it moves, and from any
//! touch: an appliance run from a keyboard or a touch screen shows no stray
//! arrow, as on ChromeOS.

pub mod theme;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use smithay::backend::allocator::Fourcc;
use smithay::backend::renderer::element::Kind;
use smithay::backend::renderer::element::memory::{
    MemoryRenderBuffer, MemoryRenderBufferRenderElement,
};
use smithay::backend::renderer::element::surface::{
    WaylandSurfaceRenderElement, render_elements_from_surface_tree,
};
use smithay::backend::renderer::{ImportAll, ImportMem, Renderer, Texture};
use smithay::input::pointer::{CursorIcon, CursorImageStatus, CursorImageSurfaceData};
use smithay::utils::{Logical, Physical, Point, Scale, Transform};
use smithay::wayland::compositor::with_states;
use tessera_config::compositor::CursorConfig;

use theme::CursorImage;

/// One frame of a themed cursor, ready to draw.
#[derive(Debug, Clone)]
struct Frame {
    buffer: MemoryRenderBuffer,
    /// In buffer pixels.
    hotspot: (i32, i32),
    delay_ms: u32,
}

/// What is drawn for the pointer on one output.
pub enum CursorElements<R: Renderer> {
    Surface(Vec<WaylandSurfaceRenderElement<R>>),
    Named(Box<MemoryRenderBufferRenderElement<R>>),
}

#[derive(Debug)]
pub struct Cursor {
    search: Vec<PathBuf>,
    config: CursorConfig,
    shown: bool,
    /// Loaded shapes by icon and buffer scale. An icon the theme lacks is the
    /// theme's default, and without that the built-in arrow.
    shapes: RefCell<HashMap<(CursorIcon, i32), Vec<Frame>>>,
}

impl Cursor {
    pub fn new(config: &CursorConfig, search: Vec<PathBuf>) -> Self {
        Cursor {
            search,
            config: config.clone(),
            shown: false,
            shapes: RefCell::default(),
        }
    }

    /// With libXcursor's search path, from the environment.
    pub fn from_env(config: &CursorConfig) -> Self {
        let xcursor_path = std::env::var("XCURSOR_PATH").ok();
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::new(
            config,
            theme::search_path(xcursor_path.as_deref(), home.as_deref()),
        )
    }

    /// A reloaded config; shapes load again when the theme or size changed.
    pub fn configure(&mut self, config: &CursorConfig) {
        if (&config.theme, config.size) != (&self.config.theme, self.config.size) {
            self.shapes.borrow_mut().clear();
        }
        self.config = config.clone();
    }

    /// A pointer event. Returns whether the pointer appeared.
    pub fn pointer_used(&mut self) -> bool {
        !std::mem::replace(&mut self.shown, true)
    }

    /// A key press. Returns whether the pointer went away.
    pub fn key_pressed(&mut self) -> bool {
        self.config.hide_when_typing && std::mem::replace(&mut self.shown, false)
    }

    /// A finger touched the screen. Returns whether the pointer went away:
    /// a touch screen shows no arrow where the finger was, whatever the
    /// typing setting.
    pub fn touched(&mut self) -> bool {
        std::mem::replace(&mut self.shown, false)
    }

    pub fn shown(&self) -> bool {
        self.shown
    }

    /// What clients are told, so that the cursors they draw themselves match.
    pub fn environment(&self) -> [(&'static str, String); 2] {
        [
            ("XCURSOR_THEME", self.config.theme.clone()),
            ("XCURSOR_SIZE", self.config.size.0.to_string()),
        ]
    }

    /// The pointer's elements on an output: `status` drawn with its hotspot at
    /// `at` (output-local, logical), or nothing while hidden.
    pub fn elements<R>(
        &self,
        renderer: &mut R,
        status: &CursorImageStatus,
        at: Point<f64, Logical>,
        scale: Scale<f64>,
        millis: u64,
    ) -> Option<CursorElements<R>>
    where
        R: Renderer + ImportAll + ImportMem,
        R::TextureId: Send + Clone + Texture + 'static,
    {
        if !self.shown {
            return None;
        }
        match status {
            CursorImageStatus::Hidden => None,
            CursorImageStatus::Surface(surface) => {
                let hotspot = with_states(surface, |s| {
                    s.data_map
                        .get::<CursorImageSurfaceData>()
                        .and_then(|d| d.lock().ok().map(|a| a.hotspot))
                })
                .unwrap_or_default();
                let loc = (at - hotspot.to_f64()).to_physical_precise_round(scale);
                Some(CursorElements::Surface(render_elements_from_surface_tree(
                    renderer,
                    surface,
                    loc,
                    scale,
                    1.0,
                    Kind::Cursor,
                )))
            }
            CursorImageStatus::Named(icon) => {
                // Drawn for the next integer scale and scaled down, like clients do.
                let buffer_scale = scale.x.max(scale.y).ceil().max(1.0) as i32;
                let frame = self.frame(*icon, buffer_scale, millis)?;
                let hotspot = Point::<i32, Logical>::from(frame.hotspot)
                    .to_f64()
                    .downscale(f64::from(buffer_scale));
                let loc: Point<f64, Physical> = (at - hotspot).to_physical(scale);
                MemoryRenderBufferRenderElement::from_buffer(
                    renderer,
                    loc,
                    &frame.buffer,
                    None,
                    None,
                    None,
                    Kind::Cursor,
                )
                .map_err(|e| tracing::warn!(?e, "cannot upload the cursor"))
                .ok()
                .map(|e| CursorElements::Named(Box::new(e)))
            }
        }
    }

    /// Whether what `status` shows changes with time alone: a theme cursor of
    /// several frames, once loaded (it is, by the frame that first shows it).
    pub fn animates(&self, status: &CursorImageStatus) -> bool {
        let CursorImageStatus::Named(icon) = status else {
            return false;
        };
        self.shapes
            .borrow()
            .iter()
            .any(|((shape, _), frames)| shape == icon && frames.len() > 1)
    }

    /// The frame of `icon` for `buffer_scale`, `millis` into its animation.
    fn frame(&self, icon: CursorIcon, buffer_scale: i32, millis: u64) -> Option<Frame> {
        let mut shapes = self.shapes.borrow_mut();
        let frames = shapes.entry((icon, buffer_scale)).or_insert_with(|| {
            let px = self.config.size.0 * buffer_scale.unsigned_abs();
            self.load(icon, px)
                .into_iter()
                .map(|image| to_frame(image, buffer_scale))
                .collect()
        });
        let total: u64 = frames.iter().map(|f| u64::from(f.delay_ms)).sum();
        if total == 0 {
            return frames.first().cloned();
        }
        let mut t = millis % total;
        frames
            .iter()
            .find(|f| {
                let d = u64::from(f.delay_ms);
                if t < d {
                    return true;
                }
                t -= d;
                false
            })
            .cloned()
    }

    fn load(&self, icon: CursorIcon, px: u32) -> Vec<CursorImage> {
        let theme = &self.config.theme;
        let mut icons = vec![icon];
        if icon != CursorIcon::Default {
            icons.push(CursorIcon::Default);
        }
        for icon in icons {
            for name in std::iter::once(icon.name()).chain(icon.alt_names().iter().copied()) {
                let Some(path) = theme::find(&self.search, theme, name) else {
                    continue;
                };
                let images = std::fs::read(&path)
                    .ok()
                    .and_then(|bytes| theme::parse(&bytes))
                    .map(|images| theme::nearest_frames(images, px))
                    .unwrap_or_default();
                if images.is_empty() {
                    tracing::warn!(path = %path.display(), "not an xcursor file");
                    continue;
                }
                return images;
            }
        }
        tracing::info!(
            theme,
            cursor = icon.name(),
            "no such cursor in the theme; drawing the built-in arrow"
        );
        vec![theme::builtin_arrow(px)]
    }
}

fn to_frame(image: CursorImage, buffer_scale: i32) -> Frame {
    let (w, h) = (image.width as i32, image.height as i32);
    Frame {
        buffer: MemoryRenderBuffer::from_slice(
            &image.pixels,
            Fourcc::Argb8888,
            (w, h),
            buffer_scale,
            Transform::Normal,
            None,
        ),
        hotspot: (image.hotspot.0 as i32, image.hotspot.1 as i32),
        delay_ms: image.delay_ms,
    }
}
