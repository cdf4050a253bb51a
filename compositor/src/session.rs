//! Starting and running a session: display, sockets, backend, outputs, IPC,
//! signals, autostart.

use std::path::PathBuf;

use std::time::Duration;

use smithay::reexports::calloop::generic::Generic;
use smithay::reexports::calloop::signals::{Signal, Signals};
use smithay::reexports::calloop::timer::{TimeoutAction, Timer};
use smithay::reexports::calloop::{EventLoop, Interest, Mode, PostAction};
use smithay::reexports::wayland_server::Display;
use smithay::wayland::socket::ListeningSocketSource;

use crate::backend::Backend;
use crate::backend::headless::{Headless, RendererChoice, VirtualOutput};
use crate::backend::kms::Kms;
use crate::backend::nested::Nested;
use crate::cli::{Args, Backend as BackendArg, Renderer};
use crate::state::Tessera;
use tessera_protocols::ClientClass;

/// Why a session could not start, mapped onto exit codes by the binary.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Which backend `auto` resolves to here.
pub fn resolve_backend(arg: BackendArg) -> BackendArg {
    match arg {
        BackendArg::Auto => {
            let nested = std::env::var_os("WAYLAND_DISPLAY").is_some()
                || std::env::var_os("DISPLAY").is_some();
            let on_vt =
                std::env::var_os("XDG_VTNR").is_some() && std::env::var_os("XDG_SEAT").is_some();
            if on_vt {
                BackendArg::Kms
            } else if nested {
                BackendArg::Nested
            } else {
                BackendArg::Headless
            }
        }
        other => other,
    }
}

/// Builds the state on `event_loop` with a headless backend: what the binary and
/// the in-process test fixture share.
pub fn headless_state(
    event_loop: &EventLoop<'static, Tessera>,
    display: &Display<Tessera>,
    config: tessera_config::compositor::CompositorConfig,
    renderer: RendererChoice,
    outputs: &[VirtualOutput],
) -> anyhow::Result<Tessera> {
    let backend = Backend::Headless(Headless::new(renderer)?);
    let mut state = Tessera::new(
        display.handle(),
        event_loop.handle(),
        event_loop.get_signal(),
        config,
        backend,
    )?;
    for spec in outputs {
        state.add_virtual_output(*spec)?;
    }
    Ok(state)
}

/// Dispatches client requests whenever the display's socket has some.
pub fn insert_display_source(
    event_loop: &EventLoop<'static, Tessera>,
    display: Display<Tessera>,
) -> anyhow::Result<()> {
    event_loop
        .handle()
        .insert_source(
            Generic::new(display, Interest::READ, Mode::Level),
            |_, display, state| {
                // SAFETY: the display is not dropped while the loop runs.
                let display = unsafe { display.get_mut() };
                match display.dispatch_clients(state) {
                    Ok(requests) => state.requests_dispatched(requests),
                    Err(err) => {
                        tracing::warn!(%err, "dispatching clients failed");
                        state.needs_redraw = true;
                    }
                }
                Ok(PostAction::Continue)
            },
        )
        .map_err(|e| anyhow::anyhow!("display source: {e}"))?;
    Ok(())
}

pub fn run(args: &Args) -> Result<(), StartError> {
    let (config, config_path) = crate::config::load(args.config.as_deref())
        .map_err(|e| StartError::Config(format!("{e:#}")))?;
    // Before anything can start a thread or load a GL driver.
    crate::render::llvmpipe::apply(config.renderer.llvmpipe_threads);
    let backend = resolve_backend(args.backend);
    let renderer = match args.renderer {
        Renderer::Pixman => RendererChoice::Pixman,
        Renderer::Gles => RendererChoice::Gles,
    };
    // The window opens before anything else: when `auto` finds a display that
    // takes no window, the session still starts, headless.
    let nested = match backend {
        BackendArg::Nested => match Nested::open() {
            Ok(opened) => Some(opened),
            Err(err) if args.backend == BackendArg::Auto => {
                tracing::warn!(%err, "a display is set but no window opens there; running headless");
                None
            }
            Err(err) => return Err(StartError::Unavailable(format!("nested: {err}"))),
        },
        _ => None,
    };

    let mut event_loop: EventLoop<'static, Tessera> =
        EventLoop::try_new().map_err(|e| anyhow::anyhow!("event loop: {e}"))?;
    let display: Display<Tessera> =
        Display::new().map_err(|e| anyhow::anyhow!("wayland display: {e}"))?;
    let outputs: Vec<VirtualOutput> = args
        .outputs
        .iter()
        .map(|o| VirtualOutput {
            width: o.width as i32,
            height: o.height as i32,
            refresh_mhz: (o.refresh_hz * 1000.0).round() as i32,
            scale: 1.0,
        })
        .collect();
    let mut state = match (backend, nested) {
        (BackendArg::Kms, _) => {
            let (kms, sources) =
                Kms::open().map_err(|e| StartError::Unavailable(format!("kms: {e}")))?;
            let mut state = Tessera::new(
                display.handle(),
                event_loop.handle(),
                event_loop.get_signal(),
                config,
                Backend::Kms(kms),
            )?;
            state.kms_start(sources)?;
            state
        }
        (_, Some((nested, events))) => {
            let mut state = Tessera::new(
                display.handle(),
                event_loop.handle(),
                event_loop.get_signal(),
                config,
                Backend::Nested(nested),
            )?;
            state.nested_start(events)?;
            state
        }
        _ => headless_state(&event_loop, &display, config, renderer, &outputs)?,
    };
    if let Some(name) = &args.plane_table {
        state
            .simulate_planes(name)
            .map_err(|e| StartError::Config(format!("--plane-table: {e}")))?;
    }
    state.config_path = config_path;

    let socket = match &args.socket {
        Some(name) => ListeningSocketSource::with_name(name),
        None => ListeningSocketSource::new_auto(),
    }
    .map_err(|e| anyhow::anyhow!("cannot create the wayland socket: {e}"))?;
    let socket_name = socket.socket_name().to_os_string();
    event_loop
        .handle()
        .insert_source(socket, |stream, _, state| {
            state.add_client(stream, ClientClass::Unrestricted);
        })
        .map_err(|e| anyhow::anyhow!("socket source: {e}"))?;
    insert_display_source(&event_loop, display)?;
    state.socket_name = Some(socket_name.clone());
    let ipc_path = crate::ipc::server::default_path(&socket_name.to_string_lossy());
    crate::ipc::server::listen(&mut state, &ipc_path)?;

    let signals = Signals::new(&[Signal::SIGHUP, Signal::SIGINT, Signal::SIGTERM])
        .map_err(|e| anyhow::anyhow!("signals: {e}"))?;
    event_loop
        .handle()
        .insert_source(signals, |event, _, state| match event.signal() {
            Signal::SIGHUP => match state.reload_config() {
                Ok(()) => tracing::info!("config reloaded"),
                Err(e) => tracing::error!("config reload failed, keeping the old config: {e:#}"),
            },
            _ => state.quit(),
        })
        .map_err(|e| anyhow::anyhow!("signal source: {e}"))?;

    if let Some(secs) = args.exit_after {
        event_loop
            .handle()
            .insert_source(
                Timer::from_duration(Duration::from_secs_f64(secs)),
                |_, _, state| {
                    tracing::info!("--exit-after reached");
                    state.quit();
                    TimeoutAction::Drop
                },
            )
            .map_err(|e| anyhow::anyhow!("timer: {e}"))?;
    }
    if let Some(path) = args.screenshot.clone() {
        schedule_screenshot(
            &mut state,
            path,
            Duration::from_secs_f64(args.screenshot_after),
        )?;
    }

    // The session environment for clients started from elsewhere (systemd user units, D-Bus activation).
    println!("WAYLAND_DISPLAY={}", socket_name.to_string_lossy());
    println!("TESSERA_SOCKET={}", ipc_path.display());
    crate::spawn::export_environment(&state);

    if !args.no_autostart {
        for cmd in state.config.autostart.commands.clone() {
            crate::spawn::spawn(&state, &cmd);
        }
    }
    for cmd in &args.spawn {
        crate::spawn::spawn(&state, cmd);
    }

    tracing::info!(socket = ?socket_name, ipc = %ipc_path.display(), "tessera running");
    let status = format!("WAYLAND_DISPLAY={}", socket_name.to_string_lossy());
    match crate::notify::ready(&status) {
        Ok(true) => tracing::info!("told the service manager the session is ready"),
        Ok(false) => {}
        Err(err) => tracing::warn!(%err, "cannot tell the service manager the session is ready"),
    }
    event_loop
        .run(None, &mut state, |state| {
            state.wake_outputs();
            let _ = state.display_handle.flush_clients();
        })
        .map_err(|e| anyhow::anyhow!("event loop: {e}"))?;
    let _ = std::fs::remove_file(&ipc_path);
    Ok(())
}

fn schedule_screenshot(state: &mut Tessera, path: PathBuf, after: Duration) -> anyhow::Result<()> {
    state
        .loop_handle
        .insert_source(Timer::from_duration(after), move |_, _, state| {
            let request = crate::ipc::proto::Request::Screenshot {
                output: None,
                path: path.to_string_lossy().into_owned(),
                cursor: false,
            };
            let answer = crate::ipc::server::handle(state, request);
            if answer.ok {
                println!("SCREENSHOT={}", path.display());
            } else {
                tracing::error!(error = ?answer.error, "screenshot failed");
            }
            TimeoutAction::Drop
        })
        .map_err(|e| anyhow::anyhow!("timer: {e}"))?;
    Ok(())
}

impl Tessera {
    /// Re-reads the config file and applies what can change live: bindings,
    /// keyboard layout and repeat, background, lock command, sandbox policy.
    /// On any error the running config stays as it was.
    pub fn reload_config(&mut self) -> anyhow::Result<()> {
        let Some(path) = self.config_path.clone() else {
            anyhow::bail!("running on the shipped defaults; there is no file to reload");
        };
        let config = crate::config::check(&path)?;
        let kb = &config.input.keyboard;
        let xkb = crate::config::xkb(kb);
        let keys = crate::input::KeyTable::new(&xkb)?;
        let bindings = crate::input::Bindings::new(&config.binds).map_err(anyhow::Error::msg)?;
        if let Some(keyboard) = self.seat.get_keyboard() {
            keyboard
                .set_xkb_config(self, xkb)
                .map_err(|e| anyhow::anyhow!("keyboard layout `{}`: {e:?}", kb.layout))?;
            keyboard.change_repeat_info(kb.repeat_rate, kb.repeat_delay);
        }
        self.sandbox
            .set_rules(crate::config::sandbox_rules(&config));
        // Feedback follows on the next frame, when surfaces are planned again.
        self.scanout.switches = crate::config::switches(&config);
        self.cursor.configure(&config.cursor);
        self.backend.configure_inputs(&config.input);
        self.keys = keys;
        self.bindings = bindings;
        self.config = config;
        self.needs_redraw = true;
        Ok(())
    }
}
