//! The nested backend: one output in a window of the running Wayland or X11
//! session (winit), drawn with GLES, for developing Tessera on a desktop.
//! Input given to the window goes to the session inside it.

use std::time::{Duration, Instant};

use smithay::backend::allocator::Fourcc;
use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::backend::egl::EGLDevice;
use smithay::backend::renderer::gles::{GlesRenderbuffer, GlesRenderer};
use smithay::backend::renderer::{Bind, ImportDma, Offscreen};
use smithay::backend::winit::{self, WinitEvent, WinitGraphicsBackend};
use smithay::output::{Mode, Output, PhysicalProperties, Subpixel};
use smithay::reexports::calloop::timer::{TimeoutAction, Timer};
use smithay::reexports::wayland_protocols::wp::presentation_time::server::wp_presentation_feedback;
use smithay::reexports::winit::dpi::LogicalSize;
use smithay::reexports::winit::window::Window;
use smithay::utils::{Physical, Size, Transform};
use smithay::wayland::presentation::Refresh;

use super::{Backend, Capture};
use crate::render::decoration::DecorationRenderer;
use crate::render::planes::FormatSet;
use crate::render::shaders::Programs;
use crate::scanout;
use crate::state::Tessera;

/// The window's refresh as far as clients are told: winit reports no rate.
const REFRESH_MHZ: i32 = 60_000;

pub struct Nested {
    window: WinitGraphicsBackend<GlesRenderer>,
    programs: Box<Programs>,
    output: Output,
    tracker: crate::render::damage::DamageTracker,
    seq: u64,
    /// What the renderer imports, read once: the answer does not change.
    formats: FormatSet,
    main_device: libc::dev_t,
}

impl Nested {
    /// Opens the window. Returns the backend and winit's event source, which
    /// [`Tessera::nested_start`] puts on the loop.
    pub fn open() -> Result<(Self, winit::WinitEventLoop), String> {
        let attributes = Window::default_attributes()
            .with_title("Tessera (nested)")
            .with_inner_size(LogicalSize::new(1280.0, 800.0))
            .with_visible(true);
        let (mut window, events) = winit::init_from_attributes::<GlesRenderer>(attributes)
            .map_err(|e| format!("cannot open a window: {e}"))?;
        let programs = Programs::compile(window.renderer())?;
        let formats = window
            .renderer()
            .dmabuf_formats()
            .into_iter()
            .map(crate::dmabuf::from_format)
            .collect();
        // The render node the parent's EGL runs on; 0 without one (llvmpipe).
        let main_device = EGLDevice::device_for_display(window.renderer().egl_context().display())
            .ok()
            .and_then(|d| d.try_get_render_node().ok().flatten())
            .map_or(0, |node| node.dev_id());
        let output = Output::new(
            "winit".into(),
            PhysicalProperties {
                size: (0, 0).into(),
                subpixel: Subpixel::Unknown,
                make: "Tessera".into(),
                model: "nested".into(),
            },
        );
        let tracker = crate::render::damage::DamageTracker::new();
        Ok((
            Nested {
                window,
                programs: Box::new(programs),
                output,
                tracker,
                seq: 0,
                formats,
                main_device,
            },
            events,
        ))
    }

    pub fn outputs(&self) -> Vec<Output> {
        vec![self.output.clone()]
    }

    pub fn dmabuf_formats(&self) -> FormatSet {
        self.formats.clone()
    }

    pub fn main_device(&self) -> libc::dev_t {
        self.main_device
    }

    pub fn import_dmabuf(&mut self, dmabuf: &Dmabuf) -> Result<(), String> {
        self.window
            .renderer()
            .import_dmabuf(dmabuf, None)
            .map(|_| ())
            .map_err(|e| format!("gles: {e:?}"))
    }

    /// Draws the output offscreen with the window's renderer and reads it back;
    /// the window itself is left alone.
    pub fn capture(&mut self, state: &Tessera, cursor: bool) -> Result<Capture, String> {
        let size = self.window.window_size();
        let decorations = GlesRenderer::decoration_programs(Some(&self.programs));
        let renderer = self.window.renderer();
        let planned =
            scanout::plan_output(state, renderer, &self.output, &decorations, size, cursor);
        let mut buffer: GlesRenderbuffer = renderer
            .create_buffer(Fourcc::Abgr8888, (size.w, size.h).into())
            .map_err(|e| format!("cannot allocate a {}x{} buffer: {e:?}", size.w, size.h))?;
        let mut fb = renderer
            .bind(&mut buffer)
            .map_err(|e| format!("bind: {e:?}"))?;
        // Upright, unlike the window's GL surface: the tracker draws untransformed.
        let scale = self.output.current_scale().fractional_scale();
        let mut tracker = crate::render::damage::DamageTracker::new();
        crate::render::draw(
            renderer,
            &mut fb,
            &mut tracker,
            (size, scale.into(), Transform::Normal),
            0,
            &planned.elements,
            planned.clear,
        )?;
        let rgba = crate::render::read_rgba(renderer, &fb, size)?;
        Ok(Capture {
            width: size.w as u32,
            height: size.h as u32,
            rgba,
        })
    }
}

impl Tessera {
    /// Maps the window's output and starts its event source and frame timer.
    pub fn nested_start(&mut self, events: winit::WinitEventLoop) -> anyhow::Result<()> {
        let (output, size) = match &self.backend {
            Backend::Nested(n) => (n.output.clone(), n.window.window_size()),
            _ => anyhow::bail!("not on the nested backend"),
        };
        let mode = Mode {
            size,
            refresh: REFRESH_MHZ,
        };
        self.map_new_output(&output, mode, 1.0);
        // GL's rows run bottom up: flipped, the window shows the frame upright.
        output.change_current_state(None, Some(Transform::Flipped180), None, None);
        self.loop_handle
            .insert_source(events, |event, _, state| state.nested_event(event))
            .map_err(|e| anyhow::anyhow!("winit source: {e}"))?;
        let refresh = Duration::from_micros(1_000_000_000 / REFRESH_MHZ as u64);
        let mut next = Instant::now() + refresh;
        self.loop_handle
            .insert_source(Timer::from_deadline(next), move |_, _, state| {
                state.nested_frame();
                next = (next + refresh).max(Instant::now());
                TimeoutAction::ToInstant(next)
            })
            .map_err(|e| anyhow::anyhow!("frame timer: {e}"))?;
        tracing::info!(width = size.w, height = size.h, "nested window open");
        Ok(())
    }

    fn nested_event(&mut self, event: WinitEvent) {
        match event {
            WinitEvent::Resized { size, .. } => self.nested_resized(size),
            WinitEvent::Input(event) => self.process_input(event),
            WinitEvent::CloseRequested => {
                tracing::info!("the window was closed");
                self.quit();
            }
            WinitEvent::Redraw => self.needs_redraw = true,
            WinitEvent::Focus(_) => {}
        }
    }

    fn nested_resized(&mut self, size: Size<i32, Physical>) {
        let Backend::Nested(n) = &self.backend else {
            return;
        };
        let output = n.output.clone();
        let mode = Mode {
            size,
            refresh: REFRESH_MHZ,
        };
        output.change_current_state(Some(mode), None, None, None);
        output.set_preferred(mode);
        self.outputs_changed();
        tracing::debug!(width = size.w, height = size.h, "window resized");
    }

    /// One frame: draw what changed into the window, then tell clients.
    fn nested_frame(&mut self) {
        let Backend::Nested(n) = &self.backend else {
            return;
        };
        let output = n.output.clone();
        self.settle_layout(&output);
        let mut backend = std::mem::replace(&mut self.backend, Backend::None);
        let drawn = match &mut backend {
            Backend::Nested(n) => draw_frame(self, n),
            _ => Err("not nested".into()),
        };
        self.backend = backend;
        match drawn {
            Ok(frame) => {
                self.scanout.record(&output.name(), &frame);
                self.frames_rendered += 1;
                self.frame_shown(&output.name());
            }
            Err(err) => tracing::warn!(%err, "frame failed"),
        }
        let seq = match &mut self.backend {
            Backend::Nested(n) => {
                n.seq += 1;
                n.seq
            }
            _ => 0,
        };
        let mut feedback = self.send_frames(&output);
        feedback.presented(
            self.clock.now(),
            Refresh::Fixed(Duration::from_micros(1_000_000_000 / REFRESH_MHZ as u64)),
            seq,
            wp_presentation_feedback::Kind::Vsync,
        );
        self.refresh_dmabuf_feedback();
        let _ = self.display_handle.flush_clients();
    }
}

/// Renders the damage since the window's buffer was last drawn, and shows it.
fn draw_frame(state: &Tessera, n: &mut Nested) -> Result<scanout::Frame, String> {
    let size = n.window.window_size();
    let age = n.window.buffer_age().unwrap_or(0);
    let decorations = GlesRenderer::decoration_programs(Some(&n.programs));
    let (renderer, mut fb) = n.window.bind().map_err(|e| format!("bind: {e}"))?;
    let planned = scanout::plan_output(state, renderer, &n.output, &decorations, size, true);
    let mode = crate::render::render_mode(&n.output).ok_or("output has no mode")?;
    let damage = crate::render::draw(
        renderer,
        &mut fb,
        &mut n.tracker,
        mode,
        age,
        &planned.elements,
        planned.clear,
    )?
    .damage;
    drop(fb);
    if !damage.is_empty() {
        n.window
            .submit(Some(&damage))
            .map_err(|e| format!("submit: {e}"))?;
    }
    Ok(planned.frame)
}
