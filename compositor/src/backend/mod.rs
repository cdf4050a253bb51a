//! Backends: where frames go and input comes from.

pub mod headless;
pub mod kms;
pub mod nested;

use std::time::Duration;

use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::desktop::layer_map_for_output;
use smithay::desktop::utils::{OutputPresentationFeedback, send_frames_surface_tree};
use smithay::input::pointer::CursorImageStatus;
use smithay::output::{Mode, Output};
use smithay::reexports::wayland_protocols::wp::presentation_time::server::wp_presentation_feedback;
use smithay::reexports::wayland_server::backend::GlobalId;
use smithay::utils::{Logical, Physical, Point, Size};

use crate::state::Tessera;

use headless::Headless;
use kms::Kms;
use nested::Nested;

#[allow(clippy::large_enum_variant)] // one instance per process
pub enum Backend {
    Headless(Headless),
    Kms(Kms),
    Nested(Nested),
    /// Placeholder while the state is being built or a backend is borrowed out.
    None,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Headless(h) => write!(f, "Headless({})", h.renderer_name()),
            Backend::Kms(k) => write!(f, "Kms({})", k.caps().driver),
            Backend::Nested(_) => f.write_str("Nested"),
            Backend::None => f.write_str("None"),
        }
    }
}

/// A PNG-ready picture of one output.
#[derive(Debug, Clone)]
pub struct Capture {
    pub width: u32,
    pub height: u32,
    /// Tightly packed RGBA8, top row first.
    pub rgba: Vec<u8>,
}

impl Capture {
    /// The RGBA of one pixel.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * self.width + x) * 4) as usize;
        [
            self.rgba[i],
            self.rgba[i + 1],
            self.rgba[i + 2],
            self.rgba[i + 3],
        ]
    }
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Headless(_) => "headless",
            Backend::Kms(_) => "kms",
            Backend::Nested(_) => "nested",
            Backend::None => "none",
        }
    }

    pub fn renderer_name(&self) -> &'static str {
        match self {
            Backend::Headless(h) => h.renderer_name(),
            Backend::Kms(_) | Backend::Nested(_) => "gles",
            Backend::None => "none",
        }
    }

    /// The input devices for `msg inputs`: libinput's on kms; none elsewhere
    /// (nested reads its window, headless the IPC).
    pub fn input_devices(
        &self,
        input: &tessera_config::compositor::InputConfig,
        outputs: &[String],
    ) -> Vec<crate::ipc::proto::InputDeviceInfo> {
        match self {
            Backend::Kms(k) => k.describe_inputs(input, outputs),
            _ => Vec::new(),
        }
    }

    /// Applies a reloaded `[input]` to the devices there are.
    pub fn configure_inputs(&mut self, input: &tessera_config::compositor::InputConfig) {
        if let Backend::Kms(k) = self {
            k.configure_inputs(input);
        }
    }

    pub fn dmabuf_formats(&self) -> crate::render::planes::FormatSet {
        match self {
            Backend::Headless(h) => h.dmabuf_formats(),
            Backend::Kms(k) => k.dmabuf_formats(),
            Backend::Nested(n) => n.dmabuf_formats(),
            Backend::None => Default::default(),
        }
    }

    pub fn main_device(&self) -> libc::dev_t {
        match self {
            Backend::Headless(h) => h.main_device(),
            Backend::Kms(k) => k.main_device(),
            Backend::Nested(n) => n.main_device(),
            Backend::None => 0,
        }
    }

    pub fn import_dmabuf(&mut self, dmabuf: &Dmabuf) -> Result<(), String> {
        match self {
            Backend::Headless(h) => h.import_dmabuf(dmabuf),
            Backend::Kms(k) => k.import_dmabuf(dmabuf),
            Backend::Nested(n) => n.import_dmabuf(dmabuf),
            Backend::None => Err("no renderer".into()),
        }
    }

    pub fn outputs(&self) -> Vec<Output> {
        match self {
            Backend::Headless(h) => h.outputs(),
            Backend::Kms(k) => k.outputs(),
            Backend::Nested(n) => n.outputs(),
            Backend::None => Vec::new(),
        }
    }
}

/// The size of an output's framebuffer: its mode with the output transform applied.
pub fn framebuffer_size(output: &Output) -> Option<Size<i32, Physical>> {
    let mode = output.current_mode()?;
    Some(output.current_transform().transform_size(mode.size))
}

impl Tessera {
    /// Clients' requests were dispatched, `requests` of them. Most requests
    /// that change the screen say so where they are handled, but not all do
    /// (a subsurface role destroyed unmaps it at once, with no commit and no
    /// hook), so any dispatch is taken to need a look at the screen, unless
    /// every request in it was a commit that changed nothing shown and its
    /// frame requests: a client asking for frame callbacks and nothing else.
    pub fn requests_dispatched(&mut self, requests: usize) {
        let quiet = std::mem::take(&mut self.quiet_requests);
        if requests > quiet {
            self.needs_redraw = true;
        }
    }

    /// Called after every turn of the event loop: when something may have
    /// changed on screen (`needs_redraw`), idle outputs draw again. A kms
    /// output idles with no timer; a headless one keeps its refresh timer but
    /// draws nothing while settled; nested draws on its own timer.
    pub fn wake_outputs(&mut self) {
        // An animated theme cursor changes with time alone.
        if self.cursor.animates(&self.cursor_status) {
            self.needs_redraw = true;
        }
        let redraw = std::mem::take(&mut self.needs_redraw);
        let frame = std::mem::take(&mut self.needs_frame);
        if matches!(self.backend, Backend::Kms(_)) {
            if redraw || frame {
                self.kms_wake();
            }
        } else if let Backend::Headless(headless) = &mut self.backend
            && redraw
        {
            headless.unsettle();
        }
    }

    /// Gives a new output its mode, the config's transform and scale (`scale`
    /// unless the config sets one), its global, and its place in the space: the
    /// configured position, else right of the others.
    pub fn map_new_output(&mut self, output: &Output, mode: Mode, scale: f64) -> GlobalId {
        let cfg = self
            .config
            .output
            .get(&output.name())
            .cloned()
            .unwrap_or_default();
        let scale = if cfg.scale != 1.0 { cfg.scale } else { scale };
        output.change_current_state(
            Some(mode),
            Some(crate::config::transform(cfg.transform)),
            Some(smithay::output::Scale::Fractional(scale)),
            None,
        );
        output.set_preferred(mode);
        let global = output.create_global::<Tessera>(&self.display_handle);
        let x = self
            .space
            .outputs()
            .filter_map(|o| self.space.output_geometry(o))
            .map(|g| g.loc.x + g.size.w)
            .max()
            .unwrap_or(0);
        let position: Point<i32, Logical> =
            cfg.position.map_or((x, 0).into(), |[x, y]| (x, y).into());
        self.space.map_output(output, position);
        self.needs_redraw = true;
        global
    }

    /// Settles the layout before a frame of `output` is drawn, on every backend:
    /// output membership of windows (and enter/leave), so a window mapped since
    /// the last frame is in this one; dead popups and layer surfaces; and what is
    /// under a pointer that did not move.
    pub fn settle_layout(&mut self, output: &Output) {
        let changed = self.shell.watch.refresh(&mut self.space);
        self.popups.cleanup();
        layer_map_for_output(output).cleanup();
        // What is under a still pointer depends on what the watch watches (and
        // the lock and input regions, which invalidate it), so an unchanged
        // layout spares a hit test of every surface tree each frame.
        if changed {
            self.pointer_rebase();
        }
    }

    /// A frame reached `output`. While a lock is pending, the lock is confirmed
    /// once every output has shown a frame without any normal surface.
    pub fn frame_shown(&mut self, output: &str) {
        if let crate::shell::lock::LockState::Locked {
            pending, blanked, ..
        } = &mut self.lock
        {
            blanked.insert(output.to_owned());
            if self.space.outputs().all(|o| blanked.contains(&o.name()))
                && let Some(locker) = pending.take()
            {
                locker.lock();
            }
        }
    }

    /// After an output went away: windows it showed move to the outputs left,
    /// maximized ones re-fitted there.
    pub fn outputs_changed(&mut self) {
        self.space.refresh();
        let Some(first) = self.space.outputs().next().cloned() else {
            return;
        };
        let usable = crate::shell::usable_area(&self.space, &first);
        let stranded: Vec<_> = self
            .space
            .elements()
            .filter(|w| self.space.outputs_for_element(w).is_empty())
            .cloned()
            .collect();
        for w in stranded {
            crate::shell::meta(&w, |m| {
                if m.fullscreen_on
                    .as_ref()
                    .is_some_and(|o| !self.space.outputs().any(|x| x == o))
                {
                    m.fullscreen_on = None;
                }
            });
            self.space.map_element(w, usable.loc, false);
        }
        self.rearrange(&first);
    }

    /// Renders `output` afresh (with the pointer when `cursor`) and reads it
    /// back, for screenshots and screencopy.
    pub fn render_capture(&mut self, output: &Output, cursor: bool) -> Result<Capture, String> {
        if let Backend::Headless(_) = self.backend {
            return self
                .render_headless(output, true, cursor)?
                .ok_or_else(|| "the renderer returned no pixels".to_owned());
        }
        let mut backend = std::mem::replace(&mut self.backend, Backend::None);
        let result = match &mut backend {
            Backend::Kms(kms) => kms.capture(self, output, cursor),
            Backend::Nested(n) => n.capture(self, cursor),
            _ => Err("no backend".to_owned()),
        };
        self.backend = backend;
        result
    }

    /// Sends frame callbacks to everything shown on `output` and collects the
    /// presentation feedback they asked for; the backend says when it was presented.
    pub fn send_frames(&mut self, output: &Output) -> OutputPresentationFeedback {
        // The buffers replaced since the last frame go back in the same write.
        self.retired.release_all();
        let now = self.clock.now();
        let throttle = Some(Duration::from_secs(1));
        let mut feedback = OutputPresentationFeedback::new(output);
        let primary = |_: &_, _: &_| Some(output.clone());
        let flags = |_: &_, _: &_| wp_presentation_feedback::Kind::empty();
        if let Some(lock) = self.lock.surface_for(output) {
            send_frames_surface_tree(lock.wl_surface(), output, now, throttle, primary);
        }
        // An animated client cursor draws its next frame when told this one showed.
        if let CursorImageStatus::Surface(cursor) = &self.cursor_status {
            send_frames_surface_tree(cursor, output, now, throttle, primary);
        }
        if !self.lock.is_locked() {
            for window in self.space.elements_for_output(output) {
                // Every surface counts this output as its primary one, so one
                // walk sends all the window owes, whatever other outputs it is on.
                let owed = window.toplevel().is_none_or(|t| {
                    self.frames_owed
                        .remove(&smithay::reexports::wayland_server::Resource::id(
                            t.wl_surface(),
                        ))
                });
                if owed {
                    window.send_frame(output, now, throttle, primary);
                    window.take_presentation_feedback(&mut feedback, primary, flags);
                }
            }
            let map = layer_map_for_output(output);
            for layer in map.layers() {
                layer.send_frame(output, now, throttle, primary);
                layer.take_presentation_feedback(&mut feedback, primary, flags);
            }
        }
        feedback
    }
}
