//! Tessera's WLCS integration. Debian's `wlcs` runner dlopens this library and
//! calls `wlcs_server_integration`; each test starts a Tessera (headless, Pixman,
//! one 1280x720 output, the shipped default config) on a thread of its own, hands
//! it client sockets, places windows and injects pointer input through a channel.
//!
//! Touch is not offered (`create_touch` returns none): Tessera has no touch
//! input path to drive yet, and the suites that need it are not run.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;

use tessera::backend::headless::{RendererChoice, VirtualOutput};
#[allow(unused_imports)] // used by ffi_dispatch! when wayland-sys is linked directly
use wayland_sys::client::*;
use wayland_sys::client::{wl_display, wl_proxy};
use wayland_sys::common::wl_fixed_t;
use wayland_sys::ffi_dispatch;
use wlcs::ffi_display_server_api::{
    WlcsExtensionDescriptor, WlcsIntegrationDescriptor, WlcsServerIntegration,
};
use wlcs::ffi_wrappers::wlcs_server;
use wlcs::{Pointer, Touch, Wlcs, extension_list, wlcs_server_integration};

mod server;

/// What the runner's thread asks of the compositor's.
#[derive(Debug)]
pub enum Command {
    /// A new client: the server end, and the fd number the client end has (how
    /// `position_window_absolute` names the client later).
    Client(UnixStream, RawFd),
    Position {
        client_fd: RawFd,
        surface: u32,
        x: i32,
        y: i32,
    },
    PointerMove(f64, f64),
    PointerMoveBy(f64, f64),
    PointerButton(u32, bool),
    Stop,
}

static EXTENSIONS: &[WlcsExtensionDescriptor] = extension_list!(
    ("wl_compositor", 6),
    ("wl_subcompositor", 1),
    ("wl_data_device_manager", 3),
    ("wl_seat", 9),
    ("wl_output", 4),
    ("xdg_wm_base", 6),
    ("zxdg_output_manager_v1", 3),
    ("wp_viewporter", 1),
    ("zwlr_layer_shell_v1", 4),
);

static DESCRIPTOR: WlcsIntegrationDescriptor = WlcsIntegrationDescriptor {
    version: 1,
    num_extensions: EXTENSIONS.len(),
    supported_extensions: EXTENSIONS.as_ptr(),
};

pub struct TesseraWlcs {
    sender: Option<calloop::channel::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TesseraWlcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TesseraWlcs")
    }
}

impl TesseraWlcs {
    fn send(&self, command: Command) {
        if let Some(s) = &self.sender
            && s.send(command).is_err()
        {
            eprintln!("tessera-wlcs: the compositor thread is gone");
        }
    }
}

impl Wlcs for TesseraWlcs {
    type Pointer = WlcsPointer;
    type Touch = WlcsTouch;

    fn new() -> Self {
        Self {
            sender: None,
            thread: None,
        }
    }

    fn start(&mut self) {
        let (sender, receiver) = calloop::channel::channel();
        let output = VirtualOutput {
            width: 1280,
            height: 720,
            refresh_mhz: 60_000,
            scale: 1.0,
        };
        self.thread = Some(std::thread::spawn(move || {
            if let Err(err) = server::run(receiver, RendererChoice::Pixman, output) {
                eprintln!("tessera-wlcs: {err:#}");
            }
        }));
        self.sender = Some(sender);
    }

    fn stop(&mut self) {
        self.send(Command::Stop);
        self.sender = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn create_client_socket(&self) -> std::io::Result<OwnedFd> {
        let (ours, theirs) = UnixStream::pair()?;
        self.send(Command::Client(ours, theirs.as_raw_fd()));
        Ok(theirs.into())
    }

    fn position_window_absolute(
        &self,
        display: *mut wl_display,
        surface: *mut wl_proxy,
        x: i32,
        y: i32,
    ) {
        // SAFETY: the runner passes its live display and surface proxy.
        let (client_fd, surface) = unsafe {
            (
                ffi_dispatch!(wayland_client_handle(), wl_display_get_fd, display),
                ffi_dispatch!(wayland_client_handle(), wl_proxy_get_id, surface),
            )
        };
        self.send(Command::Position {
            client_fd,
            surface,
            x,
            y,
        });
    }

    fn create_pointer(&mut self) -> Option<Self::Pointer> {
        Some(WlcsPointer {
            sender: self.sender.clone(),
        })
    }

    fn create_touch(&mut self) -> Option<Self::Touch> {
        None
    }

    fn get_descriptor(&self) -> &WlcsIntegrationDescriptor {
        &DESCRIPTOR
    }
}

fn fixed(v: wl_fixed_t) -> f64 {
    f64::from(v) / 256.0
}

pub struct WlcsPointer {
    sender: Option<calloop::channel::Sender<Command>>,
}

impl std::fmt::Debug for WlcsPointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WlcsPointer")
    }
}

impl WlcsPointer {
    fn send(&self, command: Command) {
        if let Some(s) = &self.sender {
            let _ = s.send(command);
        }
    }
}

/// BTN_LEFT and friends arrive as evdev codes already.
impl Pointer for WlcsPointer {
    fn move_absolute(&mut self, x: wl_fixed_t, y: wl_fixed_t) {
        self.send(Command::PointerMove(fixed(x), fixed(y)));
    }

    fn move_relative(&mut self, dx: wl_fixed_t, dy: wl_fixed_t) {
        self.send(Command::PointerMoveBy(fixed(dx), fixed(dy)));
    }

    fn button_up(&mut self, button: i32) {
        self.send(Command::PointerButton(button as u32, false));
    }

    fn button_down(&mut self, button: i32) {
        self.send(Command::PointerButton(button as u32, true));
    }
}

/// Never created (see the module docs); the type the trait needs.
#[derive(Debug)]
pub struct WlcsTouch;

impl Touch for WlcsTouch {
    fn touch_down(&mut self, _: wl_fixed_t, _: wl_fixed_t) {}
    fn touch_move(&mut self, _: wl_fixed_t, _: wl_fixed_t) {}
    fn touch_up(&mut self) {}
}

wlcs_server_integration!(TesseraWlcs);
