//! The headless backend: virtual outputs rendered offscreen on a refresh timer,
//! with Pixman or with GLES on llvmpipe through EGL surfaceless. Frames are real
//! (they can be read back), and clients get frame callbacks and presentation
//! feedback at the output's rate, as on a real display. A vblank with nothing
//! new to show draws nothing, as an idle kms output's would not (`settled`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use smithay::backend::allocator::Fourcc;
use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::backend::egl::EGLDevice;
use smithay::backend::egl::native::EGLSurfacelessDisplay;
use smithay::backend::egl::{EGLContext, EGLDisplay};
use smithay::backend::renderer::gles::{GlesRenderbuffer, GlesRenderer};
use smithay::backend::renderer::pixman::PixmanRenderer;
use smithay::backend::renderer::{
    Bind, ExportMem, ImportAll, ImportDma, ImportMem, Offscreen, Renderer, Texture,
};
use smithay::output::{Mode, Output, PhysicalProperties, Subpixel};
use smithay::reexports::calloop::timer::{TimeoutAction, Timer};
use smithay::reexports::pixman::Image;
use smithay::reexports::wayland_protocols::wp::presentation_time::server::wp_presentation_feedback;
use smithay::utils::{Physical, Size};
use smithay::wayland::presentation::Refresh;

use super::{Backend, Capture};
use crate::render;
use crate::render::decoration::{DecorationPrograms, DecorationRenderer};
use crate::render::planes::FormatSet;
use crate::render::shaders::Programs;
use crate::scanout::{self, Frame};
use crate::state::Tessera;

/// One virtual output's offscreen buffer and damage history.
pub(crate) struct Target<T> {
    buffer: T,
    tracker: render::damage::DamageTracker,
    /// 0 until the first frame: then the buffer holds the previous frame (age 1).
    age: usize,
    size: Size<i32, Physical>,
}

pub(crate) struct Gpu<R, T> {
    pub(crate) renderer: R,
    pub(crate) targets: HashMap<String, Target<T>>,
}

impl<R, T> Gpu<R, T> {
    pub(crate) fn new(renderer: R) -> Self {
        Self {
            renderer,
            targets: HashMap::new(),
        }
    }
}

#[allow(clippy::large_enum_variant)] // one instance per process
enum Renderers {
    Pixman(Gpu<PixmanRenderer, Image<'static, 'static>>),
    Gles(Gpu<GlesRenderer, GlesRenderbuffer>, Box<Programs>),
}

pub struct Headless {
    renderers: Renderers,
    outputs: Vec<(Output, Duration)>,
    /// Vblanks per output, the presentation sequence number.
    seq: HashMap<String, u64>,
    /// The outputs whose last frame still shows everything as it is: nothing
    /// that may change the screen (`Tessera::needs_redraw`) happened since.
    /// Their vblanks draw nothing, as an idle kms output's would not.
    settled: HashSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RendererChoice {
    Pixman,
    Gles,
}

/// What a virtual output looks like.
#[derive(Debug, Clone, Copy)]
pub struct VirtualOutput {
    pub width: i32,
    pub height: i32,
    pub refresh_mhz: i32,
    pub scale: f64,
}

impl Headless {
    pub fn new(choice: RendererChoice) -> anyhow::Result<Self> {
        let renderers = match choice {
            RendererChoice::Pixman => Renderers::Pixman(Gpu {
                renderer: PixmanRenderer::new().map_err(|e| anyhow::anyhow!("pixman: {e:?}"))?,
                targets: HashMap::new(),
            }),
            RendererChoice::Gles => {
                // SAFETY: EGLSurfacelessDisplay needs no native handle; the display
                // lives as long as the context that holds it.
                let display = unsafe { EGLDisplay::new(EGLSurfacelessDisplay) }
                    .map_err(|e| anyhow::anyhow!("EGL surfaceless display (Mesa llvmpipe): {e}"))?;
                let context =
                    EGLContext::new(&display).map_err(|e| anyhow::anyhow!("EGL context: {e}"))?;
                // SAFETY: the context is fresh and used by this renderer alone.
                let mut renderer = unsafe { GlesRenderer::new(context) }
                    .map_err(|e| anyhow::anyhow!("GLES renderer: {e:?}"))?;
                let programs = Programs::compile(&mut renderer).map_err(anyhow::Error::msg)?;
                Renderers::Gles(
                    Gpu {
                        renderer,
                        targets: HashMap::new(),
                    },
                    Box::new(programs),
                )
            }
        };
        Ok(Self {
            renderers,
            outputs: Vec::new(),
            seq: HashMap::new(),
            settled: HashSet::new(),
        })
    }

    /// Something may have changed on screen: every output draws its next vblank.
    pub(crate) fn unsettle(&mut self) {
        self.settled.clear();
    }

    /// The vblanks `output` has had: the presentation sequence number.
    pub fn vblanks(&self, output: &str) -> u64 {
        self.seq.get(output).copied().unwrap_or(0)
    }

    pub fn renderer_name(&self) -> &'static str {
        match self.renderers {
            Renderers::Pixman(_) => "pixman",
            Renderers::Gles(..) => "gles",
        }
    }

    pub fn outputs(&self) -> Vec<Output> {
        self.outputs.iter().map(|(o, _)| o.clone()).collect()
    }

    /// What the renderer can import as dmabufs.
    pub fn dmabuf_formats(&self) -> FormatSet {
        let formats = match &self.renderers {
            Renderers::Pixman(gpu) => gpu.renderer.dmabuf_formats(),
            Renderers::Gles(gpu, _) => gpu.renderer.dmabuf_formats(),
        };
        formats
            .into_iter()
            .map(crate::dmabuf::from_format)
            .collect()
    }

    /// The render node EGL runs on; 0 for Pixman and for llvmpipe on EGL
    /// surfaceless, which have no DRM device.
    pub fn main_device(&self) -> libc::dev_t {
        let Renderers::Gles(gpu, _) = &self.renderers else {
            return 0;
        };
        EGLDevice::device_for_display(gpu.renderer.egl_context().display())
            .ok()
            .and_then(|d| d.try_get_render_node().ok().flatten())
            .map_or(0, |node| node.dev_id())
    }

    pub fn import_dmabuf(&mut self, dmabuf: &Dmabuf) -> Result<(), String> {
        match &mut self.renderers {
            Renderers::Pixman(gpu) => gpu
                .renderer
                .import_dmabuf(dmabuf, None)
                .map(|_| ())
                .map_err(|e| format!("pixman: {e:?}")),
            Renderers::Gles(gpu, _) => gpu
                .renderer
                .import_dmabuf(dmabuf, None)
                .map(|_| ())
                .map_err(|e| format!("gles: {e:?}")),
        }
    }

    pub fn gles_programs(&self) -> Option<&Programs> {
        match &self.renderers {
            Renderers::Gles(_, p) => Some(p),
            Renderers::Pixman(_) => None,
        }
    }
}

impl Tessera {
    /// Adds a virtual output named `Virtual-N` to the right of the others and
    /// starts its refresh timer.
    pub fn add_virtual_output(&mut self, spec: VirtualOutput) -> anyhow::Result<Output> {
        let Backend::Headless(headless) = &self.backend else {
            anyhow::bail!("virtual outputs need the headless backend");
        };
        let name = format!("Virtual-{}", headless.outputs.len() + 1);
        let output = Output::new(
            name.clone(),
            PhysicalProperties {
                size: (0, 0).into(),
                subpixel: Subpixel::Unknown,
                make: "Tessera".into(),
                model: "Virtual".into(),
            },
        );
        let cfg = self.config.output.get(&name).cloned().unwrap_or_default();
        let (w, h, mhz) = match cfg.mode {
            Some(m) => (
                m.width as i32,
                m.height as i32,
                m.refresh_hz
                    .map_or(spec.refresh_mhz, |hz| (hz * 1000.0).round() as i32),
            ),
            None => (spec.width, spec.height, spec.refresh_mhz),
        };
        let mode = Mode {
            size: (w, h).into(),
            refresh: mhz,
        };
        let scale = if cfg.scale != 1.0 {
            cfg.scale
        } else {
            spec.scale
        };
        self.map_new_output(&output, mode, scale);

        let refresh = Duration::from_micros(1_000_000_000 / mhz.max(1) as u64);
        if let Backend::Headless(headless) = &mut self.backend {
            headless.outputs.push((output.clone(), refresh));
        }
        let timer_output = output.clone();
        // Deadlines on a fixed grid, not "refresh after the last frame ended": the
        // latter drifts by the render time, and a 60 Hz output would tick at 54 Hz.
        let mut next = Instant::now() + refresh;
        self.loop_handle
            .insert_source(Timer::from_deadline(next), move |_, _, state| {
                if !state.space.outputs().any(|o| *o == timer_output) {
                    // Unplugged: no more frames, and gone from the outputs.
                    if let Backend::Headless(h) = &mut state.backend {
                        h.outputs.retain(|(o, _)| *o != timer_output);
                    }
                    return TimeoutAction::Drop;
                }
                state.on_vblank(&timer_output);
                let now = Instant::now();
                next += refresh;
                if next <= now {
                    // Fell behind (a stall): skip the missed vblanks, as hardware does.
                    let behind = (now - next).as_nanos() / refresh.as_nanos().max(1) + 1;
                    next += refresh * u32::try_from(behind).unwrap_or(u32::MAX);
                }
                TimeoutAction::ToInstant(next)
            })
            .map_err(|e| anyhow::anyhow!("cannot start the refresh timer: {e}"))?;
        tracing::info!(
            name,
            width = w,
            height = h,
            refresh_mhz = mhz,
            scale,
            "virtual output added"
        );
        self.needs_redraw = true;
        Ok(output)
    }

    /// One refresh cycle of a virtual output: render unless nothing changed
    /// since its last frame, then tell clients. Not the other way round, though
    /// clients would then draw while this frame is composed: a buffer that
    /// fails as it is drawn (an shm file truncated under it) must end in the
    /// client's protocol error, never in a frame callback that says it showed.
    fn on_vblank(&mut self, output: &Output) {
        // What this turn of the loop changed before the timer fired has not
        // reached the outputs yet (that is done after the turn).
        if self.needs_redraw {
            self.wake_outputs();
        }
        let name = output.name();
        let settled = !self.debug_rerender
            && matches!(&self.backend, Backend::Headless(h) if h.settled.contains(&name));
        if !settled {
            match self.render_headless(output, false, true) {
                Ok(_) => {
                    if let Backend::Headless(h) = &mut self.backend {
                        h.settled.insert(name.clone());
                    }
                }
                Err(err) => tracing::warn!(output = name, %err, "frame failed"),
            }
        }
        if let Backend::Headless(h) = &mut self.backend {
            *h.seq.entry(name).or_default() += 1;
        }
        self.frame_done(output);
        let _ = self.display_handle.flush_clients();
    }

    /// Renders `output`, with the pointer when `cursor`; with `capture`, also
    /// reads the frame back.
    pub fn render_headless(
        &mut self,
        output: &Output,
        capture: bool,
        cursor: bool,
    ) -> Result<Option<Capture>, String> {
        let started = Instant::now();
        self.settle_layout(output);
        let mut backend = std::mem::replace(&mut self.backend, Backend::None);
        let mut shown = false;
        let result = match &mut backend {
            Backend::Headless(h) => {
                let r = match &mut h.renderers {
                    Renderers::Pixman(gpu) => {
                        let programs = PixmanRenderer::decoration_programs(None);
                        render_with(
                            self,
                            gpu,
                            output,
                            capture,
                            cursor,
                            Fourcc::Argb8888,
                            &programs,
                        )
                    }
                    Renderers::Gles(gpu, programs) => {
                        let programs = GlesRenderer::decoration_programs(Some(programs));
                        render_with(
                            self,
                            gpu,
                            output,
                            capture,
                            cursor,
                            Fourcc::Abgr8888,
                            &programs,
                        )
                    }
                };
                if let Ok((capture, frame)) = &r {
                    if capture.is_none() {
                        // A read-back is not part of what a frame costs.
                        self.scanout
                            .record_render_time(&output.name(), started.elapsed());
                    }
                    self.scanout.record(&output.name(), frame);
                    self.frames_rendered += 1;
                    shown = true;
                }
                r
            }
            _ => Err("not on the headless backend".into()),
        };
        self.backend = backend;
        if shown {
            self.frame_shown(&output.name());
        }
        let (capture, _) = result?;
        self.refresh_dmabuf_feedback();
        Ok(capture)
    }

    /// Frame callbacks and presentation feedback for everything on `output`.
    fn frame_done(&mut self, output: &Output) {
        let (refresh, seq) = match &self.backend {
            Backend::Headless(h) => (
                h.outputs.iter().find(|(o, _)| o == output).map(|(_, r)| *r),
                h.vblanks(&output.name()),
            ),
            _ => (None, 0),
        };
        let mut feedback = self.send_frames(output);
        let refresh = refresh.map_or(Refresh::Unknown, Refresh::Fixed);
        feedback.presented(
            self.clock.now(),
            refresh,
            seq,
            wp_presentation_feedback::Kind::Vsync,
        );
    }
}

pub(crate) fn render_with<R, T>(
    state: &Tessera,
    gpu: &mut Gpu<R, T>,
    output: &Output,
    capture: bool,
    cursor: bool,
    format: Fourcc,
    decorations: &DecorationPrograms,
) -> Result<(Option<Capture>, Frame), String>
where
    R: Renderer
        + ImportAll
        + ImportMem
        + ExportMem
        + Offscreen<T>
        + Bind<T>
        + DecorationRenderer
        + 'static,
    R::TextureId: Send + Clone + Texture + 'static,
{
    let size = super::framebuffer_size(output).ok_or("output has no mode")?;
    let name = output.name();
    let needs_new = gpu.targets.get(&name).is_none_or(|t| t.size != size);
    if needs_new {
        let buffer = gpu
            .renderer
            .create_buffer(format, (size.w, size.h).into())
            .map_err(|e| format!("cannot allocate a {}x{} buffer: {e:?}", size.w, size.h))?;
        gpu.targets.insert(
            name.clone(),
            Target {
                buffer,
                tracker: render::damage::DamageTracker::new(),
                age: 0,
                size,
            },
        );
    }
    let Some(target) = gpu.targets.get_mut(&name) else {
        return Err("no render target".into());
    };
    if state.debug_rerender {
        // TESSERA_DEBUG_DAMAGE=rerender: forget the buffer's contents each frame.
        target.age = 0;
    }
    let scanout::PlannedFrame {
        frame,
        elements,
        clear,
    } = scanout::plan_output(state, &mut gpu.renderer, output, decorations, size, cursor);
    tracing::trace!(output = %name, elements = elements.len(), "render");
    let mut fb = gpu
        .renderer
        .bind(&mut target.buffer)
        .map_err(|e| format!("bind: {e:?}"))?;
    let mode = render::render_mode(output).ok_or("output has no mode")?;
    let drawn = render::draw(
        &mut gpu.renderer,
        &mut fb,
        &mut target.tracker,
        mode,
        target.age,
        &elements,
        clear,
    )?;
    // A headless output shows a frame once it is drawn: wait for the renderer
    // (llvmpipe's threads draw GL asynchronously), so that the presentation
    // time and the render time both mean the finished frame.
    if let Err(err) = drawn.sync.wait() {
        tracing::debug!(?err, "waiting for the frame to be drawn was interrupted");
    }
    target.age = 1;
    if !capture {
        return Ok((None, frame));
    }
    let rgba = render::read_rgba(&mut gpu.renderer, &fb, size)?;
    let capture = Capture {
        width: size.w as u32,
        height: size.h as u32,
        rgba,
    };
    Ok((Some(capture), frame))
}
