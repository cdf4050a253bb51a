//! The one state struct every handler works on (the anvil model).

use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use smithay::desktop::{PopupManager, Space, Window};
use smithay::input::pointer::CursorImageStatus;
use smithay::input::{Seat, SeatState};
use smithay::output::Output;
use smithay::reexports::calloop::{LoopHandle, LoopSignal};
use smithay::reexports::wayland_server::backend::{ClientData, ClientId, DisconnectReason};
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::reexports::wayland_server::{Client, DisplayHandle};
use smithay::utils::{Clock, Logical, Monotonic, Point};
use smithay::wayland::compositor::{CompositorClientState, CompositorState};
use smithay::wayland::cursor_shape::CursorShapeManagerState;
use smithay::wayland::fractional_scale::FractionalScaleManagerState;
use smithay::wayland::idle_inhibit::IdleInhibitManagerState;
use smithay::wayland::idle_notify::IdleNotifierState;
use smithay::wayland::output::OutputManagerState;
use smithay::wayland::presentation::PresentationState;
use smithay::wayland::selection::data_device::DataDeviceState;
use smithay::wayland::selection::primary_selection::PrimarySelectionState;
use smithay::wayland::session_lock::SessionLockManagerState;
use smithay::wayland::shell::wlr_layer::WlrLayerShellState;
use smithay::wayland::shell::xdg::XdgShellState;
use smithay::wayland::shell::xdg::decoration::XdgDecorationState;
use smithay::wayland::shm::ShmState;
use smithay::wayland::single_pixel_buffer::SinglePixelBufferState;
use smithay::wayland::viewporter::ViewporterState;
use smithay::wayland::xdg_activation::XdgActivationState;
use tessera_config::compositor::CompositorConfig;
use tessera_protocols::ClientClass;

use crate::backend::Backend;
use crate::dmabuf::DmabufGlobals;
use crate::input::{Bindings, KeyTable};
use crate::sandbox::{Denials, SandboxPolicy, SecurityContextGlobal};
use crate::scanout::Scanout;
use crate::shell::Shell;
use crate::shell::lock::LockState;

/// Per-client data. `class` decides which privileged globals the client can see.
#[derive(Debug)]
pub struct ClientState {
    pub compositor: CompositorClientState,
    pub class: ClientClass,
    /// Connection order, for `tessera msg clients`.
    pub id: u64,
    pub denials: Denials,
    pub alive: AtomicBool,
}

impl ClientData for ClientState {
    fn initialized(&self, _client_id: ClientId) {}
    fn disconnected(&self, _client_id: ClientId, _reason: DisconnectReason) {
        self.alive.store(false, Ordering::Relaxed);
    }
}

pub struct Tessera {
    pub display_handle: DisplayHandle,
    pub loop_handle: LoopHandle<'static, Tessera>,
    pub loop_signal: LoopSignal,
    pub clock: Clock<Monotonic>,
    pub socket_name: Option<OsString>,
    pub ipc_socket: Option<std::path::PathBuf>,

    pub compositor_state: CompositorState,
    pub xdg_shell_state: XdgShellState,
    pub xdg_decoration_state: XdgDecorationState,
    pub layer_shell_state: WlrLayerShellState,
    pub shm_state: ShmState,
    pub output_manager_state: OutputManagerState,
    pub seat_state: SeatState<Tessera>,
    pub data_device_state: DataDeviceState,
    pub primary_selection_state: PrimarySelectionState,
    pub xdg_activation_state: XdgActivationState,
    pub fractional_scale_state: FractionalScaleManagerState,
    pub viewporter_state: ViewporterState,
    pub presentation_state: PresentationState,
    pub cursor_shape_state: CursorShapeManagerState,
    pub idle_notifier_state: IdleNotifierState<Tessera>,
    pub idle_inhibit_state: IdleInhibitManagerState,
    pub session_lock_state: SessionLockManagerState,
    pub single_pixel_buffer_state: SinglePixelBufferState,
    pub security_context: SecurityContextGlobal,
    pub sandbox: SandboxPolicy,
    pub dmabuf: DmabufGlobals,
    pub scanout: Scanout,
    /// Windows' elements kept between frames (`render::kept`).
    pub kept: std::cell::RefCell<crate::render::kept::KeptElements>,
    /// Every client that connected, dead ones pruned on the next connection.
    pub clients: Vec<Client>,
    pub next_client_id: u64,

    pub popups: PopupManager,
    pub space: Space<Window>,
    pub shell: Shell,
    pub lock: LockState,
    pub seat: Seat<Tessera>,
    pub keys: KeyTable,
    pub bindings: Bindings,
    pub pointer_location: Point<f64, Logical>,
    /// The pointer buttons held down, in the order pressed (`msg inputs`).
    pub pointer_buttons: Vec<u32>,
    /// The surface under the pointer and its origin as last told to clients, so a
    /// layout change under a still pointer can be noticed (`pointer_rebase`).
    pub pointer_under: Option<(WlSurface, Point<f64, Logical>)>,
    pub cursor_status: CursorImageStatus,
    /// The fingers down, by touch slot, and where each is now.
    pub touch_points: std::collections::HashMap<Option<u32>, Point<f64, Logical>>,
    /// The theme, and whether the pointer shows at all.
    pub cursor: crate::cursor::Cursor,
    pub idle_inhibitors: Vec<WlSurface>,

    pub config: CompositorConfig,
    pub config_path: Option<std::path::PathBuf>,
    pub backend: Backend,
    /// Something changed that needs a new frame.
    pub needs_redraw: bool,
    /// A commit that changed nothing shown wants its frame callback: an idle
    /// kms output wakes for it, a headless one sends it at its next vblank
    /// without drawing.
    pub needs_frame: bool,
    /// Requests of the current dispatch known to change nothing on screen: a
    /// commit that changed nothing shown and the frame requests it carried
    /// (see `requests_dispatched`).
    pub quiet_requests: usize,
    /// The frame requests the surface committing now carries, counted before
    /// the commit takes them.
    pub frame_requests: usize,
    /// Buffers commits replaced, released with the next frame callbacks.
    pub retired: crate::retired::RetiredBuffers,
    /// The windows (root surfaces) with a commit since their frame callbacks
    /// and presentation feedback were last sent: only a commit adds either,
    /// so the others are not walked each frame (`send_frames`).
    pub frames_owed:
        std::collections::HashSet<smithay::reexports::wayland_server::backend::ObjectId>,
    pub frames_rendered: u64,
    /// `TESSERA_DEBUG_DAMAGE=rerender` (wlroots' WLR_SCENE_DEBUG_DAMAGE=rerender):
    /// redraw whole outputs every frame, to see what damage tracking saves.
    pub debug_rerender: bool,
    pub running: bool,
}

impl Tessera {
    pub fn new(
        display_handle: DisplayHandle,
        loop_handle: LoopHandle<'static, Tessera>,
        loop_signal: LoopSignal,
        config: CompositorConfig,
        backend: Backend,
    ) -> anyhow::Result<Self> {
        let dh = &display_handle;
        let sandbox = SandboxPolicy::new(crate::config::sandbox_rules(&config));
        let filter = |interface: &'static str| sandbox.filter(interface);

        let compositor_state = CompositorState::new_v6::<Self>(dh);
        let xdg_shell_state = XdgShellState::new::<Self>(dh);
        let xdg_decoration_state = XdgDecorationState::new::<Self>(dh);
        let layer_shell_state =
            WlrLayerShellState::new_with_filter::<Self, _>(dh, filter("zwlr_layer_shell_v1"));
        let shm_state = ShmState::new::<Self>(dh, vec![]);
        let output_manager_state = OutputManagerState::new_with_xdg_output::<Self>(dh);
        let mut seat_state = SeatState::new();
        let data_device_state = DataDeviceState::new::<Self>(dh);
        let primary_selection_state = PrimarySelectionState::new::<Self>(dh);
        let xdg_activation_state = XdgActivationState::new::<Self>(dh);
        let fractional_scale_state = FractionalScaleManagerState::new::<Self>(dh);
        let viewporter_state = ViewporterState::new::<Self>(dh);
        let presentation_state = PresentationState::new::<Self>(dh, libc::CLOCK_MONOTONIC as u32);
        let cursor_shape_state = CursorShapeManagerState::new::<Self>(dh);
        let idle_notifier_state = IdleNotifierState::new(dh, loop_handle.clone());
        let idle_inhibit_state = IdleInhibitManagerState::new::<Self>(dh);
        let session_lock_state =
            SessionLockManagerState::new::<Self, _>(dh, filter("ext_session_lock_manager_v1"));
        let single_pixel_buffer_state = SinglePixelBufferState::new::<Self>(dh);
        let security_context = SecurityContextGlobal::new(dh, &sandbox);
        crate::screencopy::create_global(dh, &sandbox);
        let dmabuf = DmabufGlobals::new(
            dh,
            &sandbox,
            backend.main_device(),
            backend.dmabuf_formats(),
        )?;
        let scanout = Scanout::without_planes(crate::config::switches(&config));

        let mut seat = seat_state.new_wl_seat(dh, "seat0");
        let kb = &config.input.keyboard;
        let xkb = crate::config::xkb(kb);
        let keys = KeyTable::new(&xkb)?;
        let bindings = Bindings::new(&config.binds).map_err(anyhow::Error::msg)?;
        seat.add_keyboard(xkb, kb.repeat_delay, kb.repeat_rate)
            .map_err(|e| anyhow::anyhow!("keyboard layout `{}`: {e:?}", kb.layout))?;
        seat.add_pointer();
        seat.add_touch();

        Ok(Self {
            display_handle,
            loop_handle,
            loop_signal,
            clock: Clock::new(),
            socket_name: None,
            ipc_socket: None,
            compositor_state,
            xdg_shell_state,
            xdg_decoration_state,
            layer_shell_state,
            shm_state,
            output_manager_state,
            seat_state,
            data_device_state,
            primary_selection_state,
            xdg_activation_state,
            fractional_scale_state,
            viewporter_state,
            presentation_state,
            cursor_shape_state,
            idle_notifier_state,
            idle_inhibit_state,
            session_lock_state,
            single_pixel_buffer_state,
            security_context,
            sandbox,
            dmabuf,
            scanout,
            kept: Default::default(),
            clients: Vec::new(),
            next_client_id: 0,
            popups: PopupManager::default(),
            space: Space::default(),
            shell: Shell::default(),
            lock: LockState::default(),
            seat,
            keys,
            bindings,
            pointer_location: Point::from((0.0, 0.0)),
            pointer_buttons: Vec::new(),
            pointer_under: None,
            cursor_status: CursorImageStatus::default_named(),
            touch_points: Default::default(),
            cursor: crate::cursor::Cursor::from_env(&config.cursor),
            idle_inhibitors: Vec::new(),
            config,
            config_path: None,
            backend,
            needs_redraw: true,
            needs_frame: false,
            quiet_requests: 0,
            frame_requests: 0,
            retired: Default::default(),
            frames_owed: Default::default(),
            frames_rendered: 0,
            debug_rerender: std::env::var("TESSERA_DEBUG_DAMAGE").is_ok_and(|v| v == "rerender"),
            running: true,
        })
    }

    /// All outputs, in the order they were added.
    pub fn outputs(&self) -> Vec<Output> {
        self.space.outputs().cloned().collect()
    }

    /// The outputs' names in layout order, the first being the one devices
    /// fall back to.
    pub fn output_names(&self) -> Vec<String> {
        self.space.outputs().map(|o| o.name()).collect()
    }

    /// The output holding the keyboard focus, else the one under the pointer, else the first.
    pub fn focused_output(&self) -> Option<Output> {
        let focus = self.seat.get_keyboard().and_then(|k| k.current_focus());
        if let Some(surface) = focus
            && let Some(window) = self.shell.window_for_surface(&self.space, &surface)
            && let Some(o) = self.space.outputs_for_element(&window).into_iter().next()
        {
            return Some(o);
        }
        self.space
            .output_under(self.pointer_location)
            .next()
            .cloned()
            .or_else(|| self.space.outputs().next().cloned())
    }

    pub fn now(&self) -> Duration {
        self.clock.now().into()
    }

    /// Notes user activity for idle-notify.
    pub fn activity(&mut self) {
        let seat = self.seat.clone();
        self.idle_notifier_state.notify_activity(&seat);
    }

    pub fn quit(&mut self) {
        self.running = false;
        self.loop_signal.stop();
    }
}
