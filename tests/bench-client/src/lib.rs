//! A minimal xdg-shell client with a shm buffer ring: what the compositor
//! benchmark's windows and the compositor's churn test are made of.

use std::os::fd::AsFd;

use anyhow::Context;
use wayland_client::globals::{GlobalListContents, registry_queue_init};
use wayland_client::protocol::{
    wl_buffer::{self, WlBuffer},
    wl_callback::{self, WlCallback},
    wl_compositor::WlCompositor,
    wl_registry::WlRegistry,
    wl_shm::{self, WlShm},
    wl_shm_pool::WlShmPool,
    wl_surface::WlSurface,
};
use wayland_client::{Connection, Dispatch, EventQueue, QueueHandle, delegate_noop};
use wayland_protocols::xdg::shell::client::{
    xdg_surface::{self, XdgSurface},
    xdg_toplevel::{self, XdgToplevel},
    xdg_wm_base::{self, XdgWmBase},
};

const BUFFERS: usize = 4;

/// One toplevel on its own connection, drawn in a solid colour that changes with
/// every [`ShmWindow::draw`].
pub struct ShmWindow {
    surface: WlSurface,
    _xdg_surface: XdgSurface,
    _toplevel: XdgToplevel,
    pool: memmap2::MmapMut,
    buffers: Vec<WlBuffer>,
    busy: [bool; BUFFERS],
    size: (i32, i32),
    /// A tint so that windows are told apart in screenshots.
    tint: u32,
    drawn: u32,
    configured: bool,
    /// Frame callbacks received so far.
    pub frames: u64,
    /// The compositor asked the window to close.
    pub closed: bool,
}

impl std::fmt::Debug for ShmWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmWindow")
            .field("size", &self.size)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl ShmWindow {
    /// Creates a `size` toplevel with `app_id` and waits for its first configure.
    /// With `fixed`, min and max size are `size`, which every compositor floats.
    pub fn open(
        conn: &Connection,
        size: (i32, i32),
        app_id: &str,
        tint: u32,
        fixed: bool,
    ) -> anyhow::Result<(Self, EventQueue<Self>)> {
        let (globals, mut queue) = registry_queue_init::<Self>(conn)?;
        let qh = queue.handle();
        let compositor: WlCompositor = globals.bind(&qh, 4..=6, ())?;
        let shm: WlShm = globals.bind(&qh, 1..=1, ())?;
        let wm_base: XdgWmBase = globals.bind(&qh, 1..=5, ())?;

        let (w, h) = size;
        let stride = w * 4;
        let len = (stride * h) as usize;
        let file = tempfile::tempfile()?;
        file.set_len((len * BUFFERS) as u64)?;
        // SAFETY: the file is private to this process and outlives the mapping.
        let pool_map = unsafe { memmap2::MmapMut::map_mut(&file)? };
        let pool: WlShmPool = shm.create_pool(file.as_fd(), (len * BUFFERS) as i32, &qh, ());
        let buffers = (0..BUFFERS)
            .map(|i| {
                pool.create_buffer(
                    (i * len) as i32,
                    w,
                    h,
                    stride,
                    wl_shm::Format::Xrgb8888,
                    &qh,
                    i,
                )
            })
            .collect();

        let surface = compositor.create_surface(&qh, ());
        let xdg_surface = wm_base.get_xdg_surface(&surface, &qh, ());
        let toplevel = xdg_surface.get_toplevel(&qh, ());
        toplevel.set_title(app_id.into());
        toplevel.set_app_id(app_id.into());
        if fixed {
            toplevel.set_min_size(w, h);
            toplevel.set_max_size(w, h);
        }
        surface.commit();

        let mut window = ShmWindow {
            surface,
            _xdg_surface: xdg_surface,
            _toplevel: toplevel,
            pool: pool_map,
            buffers,
            busy: [false; BUFFERS],
            size,
            tint,
            drawn: 0,
            configured: false,
            frames: 0,
            closed: false,
        };
        while !window.configured {
            queue
                .blocking_dispatch(&mut window)
                .context("waiting for the first configure")?;
        }
        Ok((window, queue))
    }

    /// Draws the next colour into a free buffer and commits it, asking for a frame
    /// callback with `want_frame`.
    /// Asks for the next frame with a commit that changes nothing: no buffer, no
    /// damage. What the compositor spends on such a frame is its frame cycle alone
    /// (the wakeups, the commit's dispatch, the frame callback), the floor under
    /// any frame that does change something.
    pub fn commit_empty(&mut self, qh: &QueueHandle<Self>) {
        self.surface.frame(qh, ());
        self.surface.commit();
    }

    pub fn draw(&mut self, qh: &QueueHandle<Self>, want_frame: bool) {
        if want_frame {
            self.surface.frame(qh, ());
        }
        let Some(i) = self.busy.iter().position(|b| !b) else {
            // Every buffer is still held: commit nothing new, keep the frame loop.
            self.surface.commit();
            return;
        };
        let (w, h) = self.size;
        let len = (w * h * 4) as usize;
        let f = self.drawn;
        let colour = 0xff00_0000
            | ((f.wrapping_mul(7) & 0xff) << 16)
            | ((self.tint & 0xff) << 8)
            | (f.wrapping_mul(3) & 0xff);
        let bytes = colour.to_ne_bytes();
        for px in self.pool[i * len..(i + 1) * len].chunks_exact_mut(4) {
            px.copy_from_slice(&bytes);
        }
        self.drawn = self.drawn.wrapping_add(1);
        self.busy[i] = true;
        self.surface.attach(Some(&self.buffers[i]), 0, 0);
        self.surface.damage_buffer(0, 0, w, h);
        self.surface.commit();
    }
}

impl Dispatch<WlRegistry, GlobalListContents> for ShmWindow {
    fn event(
        _: &mut Self,
        _: &WlRegistry,
        _: wayland_client::protocol::wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

delegate_noop!(ShmWindow: ignore WlCompositor);
delegate_noop!(ShmWindow: ignore WlShm);
delegate_noop!(ShmWindow: ignore WlShmPool);
delegate_noop!(ShmWindow: ignore WlSurface);

impl Dispatch<WlBuffer, usize> for ShmWindow {
    fn event(
        state: &mut Self,
        _: &WlBuffer,
        event: wl_buffer::Event,
        index: &usize,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_buffer::Event::Release = event {
            state.busy[*index] = false;
        }
    }
}

impl Dispatch<WlCallback, ()> for ShmWindow {
    fn event(
        state: &mut Self,
        _: &WlCallback,
        event: wl_callback::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_callback::Event::Done { .. } = event {
            state.frames += 1;
        }
    }
}

impl Dispatch<XdgWmBase, ()> for ShmWindow {
    fn event(
        _: &mut Self,
        wm: &XdgWmBase,
        event: xdg_wm_base::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_wm_base::Event::Ping { serial } = event {
            wm.pong(serial);
        }
    }
}

impl Dispatch<XdgSurface, ()> for ShmWindow {
    fn event(
        state: &mut Self,
        surface: &XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_surface::Event::Configure { serial } = event {
            surface.ack_configure(serial);
            if state.configured {
                // Later configures (activation) change nothing this client draws.
                state.surface.commit();
            }
            state.configured = true;
        }
    }
}

impl Dispatch<XdgToplevel, ()> for ShmWindow {
    fn event(
        state: &mut Self,
        _: &XdgToplevel,
        event: xdg_toplevel::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_toplevel::Event::Close = event {
            state.closed = true;
        }
    }
}
