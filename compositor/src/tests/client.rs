//! A small wayland-client test client that records what the compositor sends.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wayland_client::protocol::{
    wl_buffer, wl_callback, wl_compositor, wl_data_device, wl_data_device_manager, wl_data_offer,
    wl_data_source, wl_keyboard, wl_output, wl_pointer, wl_registry, wl_seat, wl_shm, wl_shm_pool,
    wl_subcompositor, wl_subsurface, wl_surface, wl_touch,
};
use wayland_client::{Connection, Dispatch, EventQueue, Proxy, QueueHandle, WEnum, delegate_noop};
use wayland_protocols::ext::session_lock::v1::client::{
    ext_session_lock_manager_v1, ext_session_lock_surface_v1, ext_session_lock_v1,
};
use wayland_protocols::wp::cursor_shape::v1::client::{
    wp_cursor_shape_device_v1, wp_cursor_shape_manager_v1,
};
use wayland_protocols::wp::security_context::v1::client::{
    wp_security_context_manager_v1, wp_security_context_v1,
};
use wayland_protocols::wp::single_pixel_buffer::v1::client::wp_single_pixel_buffer_manager_v1;
use wayland_protocols::wp::viewporter::client::wp_viewporter;
use wayland_protocols::xdg::shell::client::{
    xdg_popup, xdg_positioner, xdg_surface, xdg_toplevel, xdg_wm_base,
};
use wayland_protocols_wlr::layer_shell::v1::client::{zwlr_layer_shell_v1, zwlr_layer_surface_v1};

/// What one client has seen and the globals it bound.
#[derive(Debug, Default)]
pub struct ClientData {
    pub globals: Vec<(u32, String, u32)>,
    /// (surface id, width, height, states) per toplevel configure.
    pub toplevel_configures: Vec<(u32, i32, i32, Vec<u32>)>,
    pub closed: Vec<u32>,
    pub layer_configures: Vec<(u32, u32)>,
    pub lock_configures: Vec<(u32, u32)>,
    pub locked: bool,
    pub lock_finished: bool,
    pub keyboard_enters: Vec<u32>,
    pub pointer: Option<wl_pointer::WlPointer>,
    /// The serial of the last wl_pointer.enter, which set_cursor needs.
    pub pointer_enter_serial: Option<u32>,
    pub cursor_shape: Option<wp_cursor_shape_manager_v1::WpCursorShapeManagerV1>,
    pub last_serial: u32,
    pub offer_mimes: Vec<String>,
    pub selection: Option<wl_data_offer::WlDataOffer>,
    pub source_sends: Vec<String>,
    pub protocol_error: Option<String>,
    /// The interface and code of the protocol error, when the compositor sent one.
    pub protocol_error_code: Option<(String, u32)>,
    pub dmabuf: super::dmabuf_client::DmabufSeen,
    pub compositor: Option<wl_compositor::WlCompositor>,
    pub shm: Option<wl_shm::WlShm>,
    pub wm_base: Option<xdg_wm_base::XdgWmBase>,
    pub seat: Option<wl_seat::WlSeat>,
    pub layer_shell: Option<zwlr_layer_shell_v1::ZwlrLayerShellV1>,
    pub lock_manager: Option<ext_session_lock_manager_v1::ExtSessionLockManagerV1>,
    pub data_manager: Option<wl_data_device_manager::WlDataDeviceManager>,
    pub output: Option<wl_output::WlOutput>,
    pub subcompositor: Option<wl_subcompositor::WlSubcompositor>,
    pub viewporter: Option<wp_viewporter::WpViewporter>,
    pub single_pixel: Option<wp_single_pixel_buffer_manager_v1::WpSinglePixelBufferManagerV1>,
    pub security: Option<wp_security_context_manager_v1::WpSecurityContextManagerV1>,
    /// xdg_popup.configure: x, y, width, height.
    pub popup_configures: Vec<(i32, i32, i32, i32)>,
    /// wl_buffer.release, by buffer protocol id, in the order they came.
    pub released: Vec<u32>,
    pub touch: Option<wl_touch::WlTouch>,
    /// wl_touch events in the order they came.
    pub touches: Vec<TouchSeen>,
}

/// A wl_touch event: surface protocol ids, touch ids, surface-local positions.
#[derive(Debug, Clone, PartialEq)]
pub enum TouchSeen {
    Down {
        surface: u32,
        id: i32,
        x: f64,
        y: f64,
    },
    Motion {
        id: i32,
        x: f64,
        y: f64,
    },
    Up {
        id: i32,
    },
    Frame,
    Cancel,
}

pub struct TestClient {
    pub conn: Connection,
    pub queue: EventQueue<ClientData>,
    pub data: ClientData,
    pub registry: wl_registry::WlRegistry,
}

/// A toplevel with its objects.
pub struct Toplevel {
    pub surface: wl_surface::WlSurface,
    pub xdg_surface: xdg_surface::XdgSurface,
    pub toplevel: xdg_toplevel::XdgToplevel,
}

pub struct Popup {
    pub surface: wl_surface::WlSurface,
    pub xdg_surface: xdg_surface::XdgSurface,
    pub popup: xdg_popup::XdgPopup,
}

/// A session lock and its surface on the client's output.
pub struct Lock {
    pub lock: ext_session_lock_v1::ExtSessionLockV1,
    pub surface: wl_surface::WlSurface,
    pub lock_surface: ext_session_lock_surface_v1::ExtSessionLockSurfaceV1,
}

impl TestClient {
    pub fn new(stream: UnixStream) -> Self {
        stream.set_nonblocking(true).unwrap();
        let conn = Connection::from_socket(stream).unwrap();
        let queue = conn.new_event_queue::<ClientData>();
        let registry = conn.display().get_registry(&queue.handle(), ());
        TestClient {
            conn,
            queue,
            data: ClientData::default(),
            registry,
        }
    }

    /// Binds the globals the tests use, once the registry has been received.
    pub fn bind_globals(&mut self) {
        let qh = self.queue.handle();
        let globals = self.data.globals.clone();
        for (name, interface, version) in globals {
            let r = &self.registry;
            match interface.as_str() {
                "wl_compositor" => {
                    self.data.compositor = Some(r.bind(name, version.min(6), &qh, ()))
                }
                "wl_shm" => self.data.shm = Some(r.bind(name, 1, &qh, ())),
                "xdg_wm_base" => self.data.wm_base = Some(r.bind(name, version.min(6), &qh, ())),
                "wl_seat" => self.data.seat = Some(r.bind(name, version.min(7), &qh, ())),
                "zwlr_layer_shell_v1" => {
                    self.data.layer_shell = Some(r.bind(name, version.min(4), &qh, ()))
                }
                "ext_session_lock_manager_v1" => {
                    self.data.lock_manager = Some(r.bind(name, 1, &qh, ()))
                }
                "wl_data_device_manager" => {
                    self.data.data_manager = Some(r.bind(name, version.min(3), &qh, ()))
                }
                "wp_cursor_shape_manager_v1" => {
                    self.data.cursor_shape = Some(r.bind(name, 1, &qh, ()))
                }
                "wl_subcompositor" => self.data.subcompositor = Some(r.bind(name, 1, &qh, ())),
                "wp_viewporter" => self.data.viewporter = Some(r.bind(name, 1, &qh, ())),
                "wp_single_pixel_buffer_manager_v1" => {
                    self.data.single_pixel = Some(r.bind(name, 1, &qh, ()))
                }
                "wp_security_context_manager_v1" => {
                    self.data.security = Some(r.bind(name, 1, &qh, ()))
                }
                "wl_output" if self.data.output.is_none() => {
                    self.data.output = Some(r.bind(name, version.min(4), &qh, ()))
                }
                _ => {}
            }
        }
    }

    /// Sends pending requests, reads whatever arrived, dispatches it.
    pub fn pump(&mut self) {
        let _ = self.conn.flush();
        if let Some(guard) = self.conn.prepare_read() {
            let _ = guard.read();
        }
        if let Err(e) = self.queue.dispatch_pending(&mut self.data) {
            self.data.protocol_error = Some(e.to_string());
        }
        if let Some(e) = self.conn.protocol_error() {
            self.data.protocol_error = Some(format!("{}: {}", e.object_interface, e.message));
            self.data.protocol_error_code = Some((e.object_interface.clone(), e.code));
        } else if let Some(e) = self.conn.backend().last_error() {
            // The compositor hung up (it may have sent an error we could not read).
            self.data
                .protocol_error
                .get_or_insert_with(|| format!("connection lost: {e}"));
        }
    }

    pub fn sync(&self) -> Arc<AtomicBool> {
        let done = Arc::new(AtomicBool::new(false));
        self.conn.display().sync(&self.queue.handle(), done.clone());
        done
    }

    pub fn qh(&self) -> QueueHandle<ClientData> {
        self.queue.handle()
    }

    /// A new wl_surface.
    pub fn surface(&self) -> wl_surface::WlSurface {
        let compositor = self.data.compositor.as_ref().unwrap();
        compositor.create_surface(&self.qh(), ())
    }

    /// A subsurface of `parent` at `at`, with a `w`x`h` buffer of `argb`
    /// attached, damaged and committed: it shows once the parent commits.
    pub fn subsurface(
        &mut self,
        parent: &wl_surface::WlSurface,
        at: (i32, i32),
        (w, h): (i32, i32),
        argb: u32,
    ) -> (wl_surface::WlSurface, wl_subsurface::WlSubsurface) {
        let surface = self.surface();
        let subcompositor = self.data.subcompositor.clone().unwrap();
        let sub = subcompositor.get_subsurface(&surface, parent, &self.qh(), ());
        sub.set_position(at.0, at.1);
        let buffer = self.buffer(w, h, argb);
        surface.attach(Some(&buffer), 0, 0);
        surface.damage_buffer(0, 0, w, h);
        surface.commit();
        (surface, sub)
    }

    /// A toplevel surface without a buffer; the caller commits.
    pub fn create_toplevel(&mut self, app_id: &str) -> Toplevel {
        let qh = self.qh();
        let surface = self.surface();
        let xdg_surface = self
            .data
            .wm_base
            .as_ref()
            .unwrap()
            .get_xdg_surface(&surface, &qh, ());
        let toplevel = xdg_surface.get_toplevel(&qh, surface.id().protocol_id());
        toplevel.set_app_id(app_id.into());
        Toplevel {
            surface,
            xdg_surface,
            toplevel,
        }
    }

    /// A `size` popup of `parent`, placed at the bottom-right corner of the
    /// `anchor` rectangle (x, y, width, height) and growing from there; its
    /// first commit is made, the caller attaches a buffer once configured.
    pub fn popup(
        &mut self,
        parent: &xdg_surface::XdgSurface,
        size: (i32, i32),
        anchor: (i32, i32, i32, i32),
    ) -> Popup {
        let qh = self.qh();
        let wm = self.data.wm_base.clone().unwrap();
        let positioner = wm.create_positioner(&qh, ());
        positioner.set_size(size.0, size.1);
        positioner.set_anchor_rect(anchor.0, anchor.1, anchor.2, anchor.3);
        positioner.set_anchor(xdg_positioner::Anchor::BottomRight);
        positioner.set_gravity(xdg_positioner::Gravity::BottomRight);
        let surface = self.surface();
        let xdg_surface = wm.get_xdg_surface(&surface, &qh, ());
        let popup = xdg_surface.get_popup(Some(parent), &positioner, &qh, ());
        surface.commit();
        Popup {
            surface,
            xdg_surface,
            popup,
        }
    }

    /// Locks the session and makes the lock surface for the client's output.
    pub fn lock(&mut self) -> Lock {
        let qh = self.qh();
        let lock = self.data.lock_manager.as_ref().unwrap().lock(&qh, ());
        let surface = self.surface();
        let output = self.data.output.clone().unwrap();
        let lock_surface = lock.get_lock_surface(&surface, &output, &qh, ());
        Lock {
            lock,
            surface,
            lock_surface,
        }
    }

    /// A solid buffer of the given size and colour (0xAARRGGBB, premultiplied).
    pub fn buffer(&mut self, w: i32, h: i32, argb: u32) -> wl_buffer::WlBuffer {
        self.pattern_buffer(w, h, |_, _| argb)
    }

    /// A buffer whose pixel (x, y) is `argb(x, y)` (0xAARRGGBB, premultiplied).
    pub fn pattern_buffer(
        &mut self,
        w: i32,
        h: i32,
        argb: impl Fn(i32, i32) -> u32,
    ) -> wl_buffer::WlBuffer {
        let file = tempfile::tempfile().unwrap();
        let bytes: Vec<u8> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .flat_map(|(x, y)| argb(x, y).to_le_bytes())
            .collect();
        std::io::Write::write_all(&mut &file, &bytes).unwrap();
        let qh = self.qh();
        let pool = self
            .data
            .shm
            .as_ref()
            .unwrap()
            .create_pool(file.as_fd(), w * h * 4, &qh, ());
        let buffer = pool.create_buffer(0, w, h, w * 4, wl_shm::Format::Argb8888, &qh, ());
        pool.destroy();
        buffer
    }

    /// Commits a buffer of the last configured size (or `fallback` when the
    /// compositor left the size to the client).
    pub fn attach_configured(
        &mut self,
        surface: &wl_surface::WlSurface,
        fallback: (i32, i32),
        argb: u32,
    ) {
        let id = surface.id().protocol_id();
        let (w, h) = self
            .data
            .toplevel_configures
            .iter()
            .rev()
            .find(|c| c.0 == id)
            .map(|c| (c.1, c.2))
            .filter(|&(w, h)| w > 0 && h > 0)
            .unwrap_or(fallback);
        let buffer = self.buffer(w, h, argb);
        surface.attach(Some(&buffer), 0, 0);
        surface.damage_buffer(0, 0, w, h);
        surface.commit();
    }

    pub fn configures_of(&self, surface: &wl_surface::WlSurface) -> Vec<(i32, i32, Vec<u32>)> {
        let id = surface.id().protocol_id();
        self.data
            .toplevel_configures
            .iter()
            .filter(|c| c.0 == id)
            .map(|c| (c.1, c.2, c.3.clone()))
            .collect()
    }
}

impl Dispatch<wl_registry::WlRegistry, ()> for ClientData {
    fn event(
        state: &mut Self,
        _: &wl_registry::WlRegistry,
        event: wl_registry::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_registry::Event::Global {
            name,
            interface,
            version,
        } = event
        {
            state.globals.push((name, interface, version));
        }
    }
}

impl Dispatch<wl_callback::WlCallback, Arc<AtomicBool>> for ClientData {
    fn event(
        _: &mut Self,
        _: &wl_callback::WlCallback,
        _: wl_callback::Event,
        done: &Arc<AtomicBool>,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        done.store(true, Ordering::SeqCst);
    }
}

impl Dispatch<xdg_wm_base::XdgWmBase, ()> for ClientData {
    fn event(
        _: &mut Self,
        wm: &xdg_wm_base::XdgWmBase,
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

impl Dispatch<xdg_surface::XdgSurface, ()> for ClientData {
    fn event(
        _: &mut Self,
        surface: &xdg_surface::XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_surface::Event::Configure { serial } = event {
            surface.ack_configure(serial);
        }
    }
}

/// Toplevels carry their wl_surface id as user data, so configures can be attributed.
impl Dispatch<xdg_toplevel::XdgToplevel, u32> for ClientData {
    fn event(
        state: &mut Self,
        _: &xdg_toplevel::XdgToplevel,
        event: xdg_toplevel::Event,
        surface_id: &u32,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        let surface_id = *surface_id;
        match event {
            xdg_toplevel::Event::Configure {
                width,
                height,
                states,
            } => {
                let states = states
                    .chunks_exact(4)
                    .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                state
                    .toplevel_configures
                    .push((surface_id, width, height, states));
            }
            xdg_toplevel::Event::Close => state.closed.push(surface_id),
            _ => {}
        }
    }
}

impl Dispatch<zwlr_layer_surface_v1::ZwlrLayerSurfaceV1, ()> for ClientData {
    fn event(
        state: &mut Self,
        layer: &zwlr_layer_surface_v1::ZwlrLayerSurfaceV1,
        event: zwlr_layer_surface_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let zwlr_layer_surface_v1::Event::Configure {
            serial,
            width,
            height,
        } = event
        {
            layer.ack_configure(serial);
            state.layer_configures.push((width, height));
        }
    }
}

impl Dispatch<ext_session_lock_v1::ExtSessionLockV1, ()> for ClientData {
    fn event(
        state: &mut Self,
        _: &ext_session_lock_v1::ExtSessionLockV1,
        event: ext_session_lock_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            ext_session_lock_v1::Event::Locked => state.locked = true,
            ext_session_lock_v1::Event::Finished => state.lock_finished = true,
            _ => {}
        }
    }
}

impl Dispatch<ext_session_lock_surface_v1::ExtSessionLockSurfaceV1, ()> for ClientData {
    fn event(
        state: &mut Self,
        surface: &ext_session_lock_surface_v1::ExtSessionLockSurfaceV1,
        event: ext_session_lock_surface_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let ext_session_lock_surface_v1::Event::Configure {
            serial,
            width,
            height,
        } = event
        {
            surface.ack_configure(serial);
            state.lock_configures.push((width, height));
        }
    }
}

impl Dispatch<wl_seat::WlSeat, ()> for ClientData {
    fn event(
        state: &mut Self,
        seat: &wl_seat::WlSeat,
        event: wl_seat::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        if let wl_seat::Event::Capabilities {
            capabilities: WEnum::Value(caps),
        } = event
        {
            if caps.contains(wl_seat::Capability::Keyboard) {
                seat.get_keyboard(qh, ());
            }
            if caps.contains(wl_seat::Capability::Pointer) && state.pointer.is_none() {
                state.pointer = Some(seat.get_pointer(qh, ()));
            }
            if caps.contains(wl_seat::Capability::Touch) && state.touch.is_none() {
                state.touch = Some(seat.get_touch(qh, ()));
            }
        }
    }
}

impl Dispatch<wl_pointer::WlPointer, ()> for ClientData {
    fn event(
        state: &mut Self,
        _: &wl_pointer::WlPointer,
        event: wl_pointer::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_pointer::Event::Enter { serial, .. } = event {
            state.pointer_enter_serial = Some(serial);
        }
    }
}

impl Dispatch<wl_touch::WlTouch, ()> for ClientData {
    fn event(
        state: &mut Self,
        _: &wl_touch::WlTouch,
        event: wl_touch::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        let seen = match event {
            wl_touch::Event::Down {
                surface, id, x, y, ..
            } => TouchSeen::Down {
                surface: surface.id().protocol_id(),
                id,
                x,
                y,
            },
            wl_touch::Event::Motion { id, x, y, .. } => TouchSeen::Motion { id, x, y },
            wl_touch::Event::Up { id, .. } => TouchSeen::Up { id },
            wl_touch::Event::Frame => TouchSeen::Frame,
            wl_touch::Event::Cancel => TouchSeen::Cancel,
            _ => return,
        };
        state.touches.push(seen);
    }
}

impl Dispatch<wl_keyboard::WlKeyboard, ()> for ClientData {
    fn event(
        state: &mut Self,
        _: &wl_keyboard::WlKeyboard,
        event: wl_keyboard::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_keyboard::Event::Enter {
            surface, serial, ..
        } = event
        {
            state.keyboard_enters.push(surface.id().protocol_id());
            state.last_serial = serial;
        }
    }
}

impl Dispatch<wl_data_device::WlDataDevice, ()> for ClientData {
    fn event(
        state: &mut Self,
        _: &wl_data_device::WlDataDevice,
        event: wl_data_device::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_data_device::Event::Selection { id } = event {
            state.selection = id;
        }
    }

    wayland_client::event_created_child!(ClientData, wl_data_device::WlDataDevice, [
        wl_data_device::EVT_DATA_OFFER_OPCODE => (wl_data_offer::WlDataOffer, ()),
    ]);
}

impl Dispatch<wl_data_offer::WlDataOffer, ()> for ClientData {
    fn event(
        state: &mut Self,
        _: &wl_data_offer::WlDataOffer,
        event: wl_data_offer::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_data_offer::Event::Offer { mime_type } = event {
            state.offer_mimes.push(mime_type);
        }
    }
}

/// The payload a data source hands out when asked.
impl Dispatch<wl_data_source::WlDataSource, Vec<u8>> for ClientData {
    fn event(
        state: &mut Self,
        _: &wl_data_source::WlDataSource,
        event: wl_data_source::Event,
        payload: &Vec<u8>,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_data_source::Event::Send { mime_type, fd } = event {
            state.source_sends.push(mime_type);
            let mut file = std::fs::File::from(fd);
            let _ = std::io::Write::write_all(&mut file, payload);
        }
    }
}

delegate_noop!(ClientData: ignore wl_compositor::WlCompositor);
delegate_noop!(ClientData: ignore wl_surface::WlSurface);
delegate_noop!(ClientData: ignore wl_shm::WlShm);
delegate_noop!(ClientData: ignore wl_shm_pool::WlShmPool);
delegate_noop!(ClientData: ignore wl_output::WlOutput);
delegate_noop!(ClientData: ignore zwlr_layer_shell_v1::ZwlrLayerShellV1);
delegate_noop!(ClientData: ignore ext_session_lock_manager_v1::ExtSessionLockManagerV1);
delegate_noop!(ClientData: ignore wl_data_device_manager::WlDataDeviceManager);
delegate_noop!(ClientData: ignore wp_security_context_manager_v1::WpSecurityContextManagerV1);
delegate_noop!(ClientData: ignore wp_security_context_v1::WpSecurityContextV1);
delegate_noop!(ClientData: ignore wp_single_pixel_buffer_manager_v1::WpSinglePixelBufferManagerV1);
delegate_noop!(ClientData: ignore wp_cursor_shape_manager_v1::WpCursorShapeManagerV1);
delegate_noop!(ClientData: ignore wp_cursor_shape_device_v1::WpCursorShapeDeviceV1);

impl Dispatch<wl_buffer::WlBuffer, ()> for ClientData {
    fn event(
        state: &mut Self,
        buffer: &wl_buffer::WlBuffer,
        event: wl_buffer::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_buffer::Event::Release = event {
            state.released.push(buffer.id().protocol_id());
        }
    }
}
