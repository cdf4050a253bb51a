//! Buffers a commit replaced, handed back to their clients with the next frame.
//!
//! smithay releases the buffer a commit replaces at once, so every commit of a
//! double-buffered client costs a second message and a second wakeup after
//! its frame callback: wl_buffer.release right after the commit, then
//! wl_callback.done at the next frame. With 16 animating windows those
//! releases were half of the compositor's socket writes. The client only needs
//! the old buffer to draw its next frame, which it starts on the frame
//! callback, so the release goes out with it (Weston releases shm buffers at
//! repaint, too). A frame that never comes (an output off, a session switched
//! away) holds nothing for long: a timer hands back what waited past
//! [`RetiredBuffers::LONGEST`].

use std::time::{Duration, Instant};

use smithay::backend::renderer::utils::{Buffer, RendererSurfaceStateUserData};
use smithay::reexports::calloop::timer::{TimeoutAction, Timer};
use smithay::reexports::wayland_server::Resource;
use smithay::reexports::wayland_server::backend::ObjectId;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::wayland::compositor::{SurfaceAttributes, TraversalAction, with_surface_tree_upward};

use crate::state::Tessera;

#[derive(Debug, Default)]
pub struct RetiredBuffers {
    /// At most one per surface: a buffer replaced before it was ever shown
    /// goes back at once.
    held: Vec<(ObjectId, Buffer, Instant)>,
    timer_armed: bool,
}

impl RetiredBuffers {
    /// The longest a buffer waits for a frame.
    pub const LONGEST: Duration = Duration::from_millis(50);

    /// Every buffer is handed back (by dropping the last reference).
    pub fn release_all(&mut self) {
        self.held.clear();
    }

    fn hold(&mut self, surface: ObjectId, buffer: Buffer, now: Instant) {
        match self.held.iter_mut().find(|(id, ..)| *id == surface) {
            Some(slot) => *slot = (surface, buffer, now),
            None => self.held.push((surface, buffer, now)),
        }
    }

    /// Releases what waited `LONGEST`; the next deadline, if anything is left.
    fn expire(&mut self, now: Instant) -> Option<Instant> {
        self.held
            .retain(|(.., since)| now.duration_since(*since) < Self::LONGEST);
        self.held
            .iter()
            .map(|(.., since)| *since + Self::LONGEST)
            .min()
    }
}

impl Tessera {
    /// Before a commit of `surface` is applied to the renderer state: keeps
    /// the buffers it replaces, in its whole tree (synchronized subsurfaces
    /// apply with it), until the next frame.
    pub fn retire_replaced_buffers(&mut self, surface: &WlSurface) {
        let now = Instant::now();
        let mut replaced: Vec<(ObjectId, Buffer)> = Vec::new();
        with_surface_tree_upward(
            surface,
            (),
            |_, _, _| TraversalAction::DoChildren(()),
            |surf, states, _| {
                // The renderer state takes the pending buffer exactly when the
                // current attributes carry one (a new buffer or a removal).
                if states
                    .cached_state
                    .get::<SurfaceAttributes>()
                    .current()
                    .buffer
                    .is_none()
                {
                    return;
                }
                let old = states
                    .data_map
                    .get::<RendererSurfaceStateUserData>()
                    .and_then(|s| s.lock().ok().and_then(|s| s.buffer().cloned()));
                if let Some(old) = old {
                    replaced.push((surf.id(), old));
                }
            },
            |_, _, _| true,
        );
        if replaced.is_empty() {
            return;
        }
        for (id, buffer) in replaced {
            self.retired.hold(id, buffer, now);
        }
        if !self.retired.timer_armed {
            self.retired.timer_armed = true;
            let armed = self.loop_handle.insert_source(
                Timer::from_duration(RetiredBuffers::LONGEST),
                |_, _, state| match state.retired.expire(Instant::now()) {
                    Some(next) => TimeoutAction::ToInstant(next),
                    None => {
                        state.retired.timer_armed = false;
                        TimeoutAction::Drop
                    }
                },
            );
            if armed.is_err() {
                // No timer, no holding: hand everything back now.
                self.retired.timer_armed = false;
                self.retired.release_all();
            }
        }
    }
}
