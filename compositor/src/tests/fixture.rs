//! The fixture: the real state, a headless output, in-process clients.

use std::os::unix::net::UnixStream;

use std::sync::atomic::Ordering;
use std::time::Duration;

use smithay::reexports::calloop::EventLoop;
use smithay::reexports::wayland_server::{Client, Display};

use super::client::TestClient;
use crate::backend::Capture;
use crate::backend::headless::{RendererChoice, VirtualOutput};
use crate::state::Tessera;

pub struct Fixture {
    pub event_loop: EventLoop<'static, Tessera>,
    pub display: Display<Tessera>,
    pub state: Tessera,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_renderer(RendererChoice::Pixman)
    }

    pub fn with_renderer(renderer: RendererChoice) -> Self {
        let event_loop = EventLoop::try_new().unwrap();
        let display = Display::new().unwrap();
        let config = tessera_config::parse(
            tessera_config::compositor::DEFAULT_TOML,
            std::path::Path::new("<defaults>"),
        )
        .unwrap();
        let outputs = [VirtualOutput {
            width: 1280,
            height: 720,
            refresh_mhz: 60_000,
            scale: 1.0,
        }];
        let state =
            crate::session::headless_state(&event_loop, &display, config, renderer, &outputs)
                .unwrap();
        Fixture {
            event_loop,
            display,
            state,
        }
    }

    /// Runs the compositor side once: client requests, timers, flush.
    pub fn dispatch(&mut self) {
        // As the session's display source does.
        let requests = self.display.dispatch_clients(&mut self.state).unwrap();
        self.state.requests_dispatched(requests);
        self.event_loop
            .dispatch(Some(Duration::ZERO), &mut self.state)
            .unwrap();
        self.display.flush_clients().unwrap();
    }

    pub fn add_client(&mut self) -> (TestClient, Client) {
        let (server, client) = UnixStream::pair().unwrap();
        let handle = self
            .state
            .add_client(server, tessera_protocols::ClientClass::Unrestricted)
            .unwrap();
        let mut c = TestClient::new(client);
        self.roundtrip(&mut c);
        c.bind_globals();
        self.roundtrip(&mut c);
        (c, handle)
    }

    /// Until the compositor has answered everything `client` sent so far.
    pub fn roundtrip(&mut self, client: &mut TestClient) {
        let done = client.sync();
        for _ in 0..1000 {
            client.pump();
            self.dispatch();
            client.pump();
            if done.load(Ordering::SeqCst) || client.data.protocol_error.is_some() {
                return;
            }
        }
        panic!("roundtrip never completed");
    }

    /// Asks for a frame callback on `surface` and runs the loop until the output's
    /// refresh timer delivers it; false if none came within two seconds.
    pub fn next_frame(
        &mut self,
        client: &mut TestClient,
        surface: &wayland_client::protocol::wl_surface::WlSurface,
    ) -> bool {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        surface.frame(&client.qh(), done.clone());
        surface.commit();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            client.pump();
            self.dispatch();
            client.pump();
            if done.load(Ordering::SeqCst) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    /// Renders the first output and reads it back.
    pub fn screenshot(&mut self) -> Capture {
        let output = self.state.outputs()[0].clone();
        self.state
            .render_headless(&output, true, false)
            .unwrap()
            .unwrap()
    }

    /// Renders the first output with the pointer, as it is shown.
    pub fn screenshot_with_cursor(&mut self) -> Capture {
        let output = self.state.outputs()[0].clone();
        self.state
            .render_headless(&output, true, true)
            .unwrap()
            .unwrap()
    }

    pub fn focused_app(&self) -> Option<String> {
        let w = self.state.shell.focus.front()?;
        crate::shell::app_id_and_title(w).0
    }
}

pub fn pixel(c: &Capture, x: u32, y: u32) -> [u8; 4] {
    c.pixel(x, y)
}

impl Fixture {
    /// Creates a toplevel and lets it take its first configure: the initial
    /// commit, with no buffer, and the compositor's answer.
    pub fn configured_toplevel(
        &mut self,
        client: &mut TestClient,
        app_id: &str,
    ) -> super::client::Toplevel {
        let t = client.create_toplevel(app_id);
        t.surface.commit();
        self.roundtrip(client);
        t
    }

    /// Creates a toplevel, lets it take its first configure and maps it with a
    /// buffer of the configured size (or `fallback`) in one colour.
    pub fn map_toplevel(
        &mut self,
        client: &mut TestClient,
        app_id: &str,
        fallback: (i32, i32),
        argb: u32,
    ) -> super::client::Toplevel {
        let t = self.configured_toplevel(client, app_id);
        client.attach_configured(&t.surface, fallback, argb);
        self.roundtrip(client);
        t
    }
}
