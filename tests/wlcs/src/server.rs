//! The compositor's thread: a real Tessera state on its own event loop, taking
//! commands from the runner's thread through a calloop channel.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::rc::Rc;

use calloop::EventLoop;
use calloop::channel::{Channel, Event};
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::reexports::wayland_server::{Client, Display};
use smithay::utils::{Logical, Point};
use tessera::backend::headless::{RendererChoice, VirtualOutput};
use tessera::state::Tessera;
use tessera_protocols::ClientClass;

use crate::Command;

type Clients = Rc<RefCell<HashMap<RawFd, Client>>>;

pub fn run(
    commands: Channel<Command>,
    renderer: RendererChoice,
    output: VirtualOutput,
) -> anyhow::Result<()> {
    let mut event_loop: EventLoop<'static, Tessera> = EventLoop::try_new()?;
    let display: Display<Tessera> = Display::new()?;
    let mut config: tessera_config::compositor::CompositorConfig = tessera_config::parse(
        tessera_config::compositor::DEFAULT_TOML,
        std::path::Path::new("<defaults>"),
    )?;
    // WLCS places windows itself and expects them at the size the client picks:
    // the desktop policy, not the Chromebook one.
    config.shell.new_windows = tessera_config::compositor::NewWindows::Floating;
    let mut state =
        tessera::session::headless_state(&event_loop, &display, config, renderer, &[output])?;
    tessera::session::insert_display_source(&event_loop, display)?;
    let clients: Clients = Rc::default();
    event_loop
        .handle()
        .insert_source(commands, move |event, _, state| match event {
            Event::Msg(command) => handle(state, &clients, command),
            Event::Closed => state.quit(),
        })
        .map_err(|e| anyhow::anyhow!("command channel: {e}"))?;
    // As the session's loop does: what a turn changed reaches the outputs.
    event_loop.run(None, &mut state, |state| {
        state.wake_outputs();
        let _ = state.display_handle.flush_clients();
    })?;
    Ok(())
}

fn handle(state: &mut Tessera, clients: &Clients, command: Command) {
    match command {
        Command::Client(stream, fd) => {
            if let Some(client) = state.add_client(stream, ClientClass::Unrestricted) {
                clients.borrow_mut().insert(fd, client);
            }
        }
        Command::Position {
            client_fd,
            surface,
            x,
            y,
        } => position(state, clients, client_fd, surface, (x, y)),
        Command::PointerMove(x, y) => state.pointer_move(Point::from((x, y))),
        Command::PointerMoveBy(dx, dy) => {
            let to: Point<f64, Logical> = state.pointer_location + Point::from((dx, dy));
            state.pointer_move(to);
        }
        Command::PointerButton(button, pressed) => state.pointer_button(button, pressed),
        Command::Stop => state.quit(),
    }
}

/// WLCS places windows itself: the window leaves Tessera's layout (not
/// maximized) and goes where the test says.
fn position(state: &mut Tessera, clients: &Clients, fd: RawFd, id: u32, at: (i32, i32)) {
    let clients = clients.borrow();
    let Some(client) = clients.get(&fd) else {
        eprintln!("tessera-wlcs: position_window_absolute for an unknown client fd {fd}");
        return;
    };
    let Ok(surface) = client.object_from_protocol_id::<WlSurface>(&state.display_handle, id) else {
        eprintln!("tessera-wlcs: no wl_surface@{id}");
        return;
    };
    let Some(window) = state.shell.window_for_surface(&state.space, &surface) else {
        eprintln!("tessera-wlcs: wl_surface@{id} is not a mapped window");
        return;
    };
    state.place_window(&window, at);
}
