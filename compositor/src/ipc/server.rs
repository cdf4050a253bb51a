//! The compositor side of the IPC: a listening socket on the event loop.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use smithay::reexports::calloop::generic::Generic;
use smithay::reexports::calloop::{Interest, Mode, PostAction};
use smithay::reexports::wayland_protocols::xdg::shell::server::xdg_toplevel;
use smithay::utils::Point;

use smithay::backend::renderer::utils::RendererSurfaceStateUserData;
use smithay::wayland::compositor::{SurfaceAttributes, with_states};
use smithay::wayland::shell::xdg::{ToplevelSurface, XdgToplevelSurfaceData};

use super::proto::{
    OutputInfo, PointerButton, Request, Response, SeatInfo, SurfaceInfo, TouchPointInfo,
    VersionInfo, WindowInfo,
};
use crate::handlers::compositor::CommitStamp;
use crate::input::{BTN_LEFT, BTN_MIDDLE, BTN_RIGHT};
use crate::shell::{meta, usable_area, window_id};
use crate::state::Tessera;

/// Binds the socket (replacing a stale one) and serves it on the state's loop.
pub fn listen(state: &mut Tessera, path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        // A live compositor answers connections; only a dead one's socket is removed.
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!("{} is in use by another tessera", path.display());
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
    listener.set_nonblocking(true)?;
    state
        .loop_handle
        .insert_source(
            Generic::new(listener, Interest::READ, Mode::Level),
            |_, listener, state| {
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => serve(state, stream),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            tracing::warn!(%e, "ipc accept failed");
                            break;
                        }
                    }
                }
                Ok(PostAction::Continue)
            },
        )
        .map_err(|e| anyhow::anyhow!("ipc source: {e}"))?;
    state.ipc_socket = Some(path.to_path_buf());
    Ok(())
}

pub fn default_path(wayland_display: &str) -> PathBuf {
    let dir = std::env::var_os("XDG_RUNTIME_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    dir.join(format!("tessera-{wayland_display}.sock"))
}

fn serve(state: &mut Tessera, stream: UnixStream) {
    // A client that never reads its answer must not stall the compositor.
    if stream.set_nonblocking(true).is_err()
        || stream
            .set_write_timeout(Some(std::time::Duration::from_secs(2)))
            .is_err()
    {
        return;
    }
    let mut buffer = Vec::new();
    let inserted = state.loop_handle.insert_source(
        Generic::new(stream, Interest::READ, Mode::Level),
        move |_, stream, state| {
            let mut chunk = [0u8; 4096];
            // Read and write through `&UnixStream`: the event source owns the stream.
            let mut s: &UnixStream = stream;
            loop {
                match s.read(&mut chunk) {
                    Ok(0) => return Ok(PostAction::Remove),
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => return Ok(PostAction::Remove),
                }
                if buffer.len() > 1 << 20 {
                    return Ok(PostAction::Remove);
                }
            }
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let response = match serde_json::from_slice::<Request>(&line) {
                    Ok(req) => handle(state, req),
                    Err(e) => Response::err(format!("bad request: {e}")),
                };
                let mut out = serde_json::to_vec(&response).unwrap_or_default();
                out.push(b'\n');
                let _ = s.set_nonblocking(false);
                if s.write_all(&out).is_err() {
                    return Ok(PostAction::Remove);
                }
                let _ = s.set_nonblocking(true);
            }
            Ok(PostAction::Continue)
        },
    );
    if let Err(e) = inserted {
        tracing::warn!(%e, "ipc connection source");
    }
}

/// Answers one request.
pub fn handle(state: &mut Tessera, request: Request) -> Response {
    tracing::debug!(?request, "ipc");
    match request {
        Request::Version => Response::ok(VersionInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            backend: state.backend.name().into(),
            renderer: state.backend.renderer_name().into(),
            wayland_display: state
                .socket_name
                .as_ref()
                .map(|s| s.to_string_lossy().into_owned()),
            frames: state.frames_rendered,
            locked: state.lock.is_locked(),
        }),
        Request::Outputs => Response::ok(outputs(state)),
        Request::Windows => Response::ok(windows(state)),
        Request::Clients => Response::ok(state.client_infos()),
        Request::Planes => Response::ok(state.scanout.report()),
        Request::Inputs => Response::ok(seat(state)),
        Request::Focus { id } => {
            let w = state
                .shell
                .all_windows(&state.space)
                .find(|w| window_id(w) == id)
                .cloned();
            match w {
                Some(w) => {
                    state.focus_window(Some(w));
                    Response::ok(())
                }
                None => Response::err(format!("no window {id}")),
            }
        }
        Request::Screenshot {
            output,
            path,
            cursor,
        } => screenshot(state, output.as_deref(), Path::new(&path), cursor),
        Request::Type { text } => state
            .type_text(&text)
            .map_or_else(Response::err, Response::ok),
        Request::Key { combo } => state
            .press_combo(&combo)
            .map_or_else(Response::err, Response::ok),
        Request::PointerMove { x, y } => {
            state.pointer_move(Point::from((x, y)));
            Response::ok(())
        }
        Request::PointerClick { button } => {
            let code = match button {
                PointerButton::Left => BTN_LEFT,
                PointerButton::Right => BTN_RIGHT,
                PointerButton::Middle => BTN_MIDDLE,
            };
            state.pointer_button(code, true);
            state.pointer_button(code, false);
            Response::ok(())
        }
        Request::TouchDown { slot, x, y } => {
            let time = state.now().as_millis() as u32;
            state.touch_down(Some(slot), Point::from((x, y)), time);
            state.touch_frame();
            Response::ok(())
        }
        Request::TouchMove { slot, x, y } => {
            let time = state.now().as_millis() as u32;
            state.touch_motion(Some(slot), Point::from((x, y)), time);
            state.touch_frame();
            Response::ok(())
        }
        Request::TouchUp { slot } => {
            let time = state.now().as_millis() as u32;
            state.touch_up(Some(slot), time);
            state.touch_frame();
            Response::ok(())
        }
        Request::TouchTap { x, y } => {
            state.touch_tap(Point::from((x, y)));
            Response::ok(())
        }
        Request::Reload => state
            .reload_config()
            .map_or_else(|e| Response::err(format!("{e:#}")), Response::ok),
        Request::Quit => {
            state.quit();
            Response::ok(())
        }
    }
}

fn outputs(state: &Tessera) -> Vec<OutputInfo> {
    state
        .outputs()
        .iter()
        .map(|o| {
            let geo = state.space.output_geometry(o).unwrap_or_default();
            let mode = o.current_mode();
            let usable = usable_area(&state.space, o);
            OutputInfo {
                name: o.name(),
                width: mode.map_or(0, |m| m.size.w),
                height: mode.map_or(0, |m| m.size.h),
                refresh_mhz: mode.map_or(0, |m| m.refresh),
                scale: o.current_scale().fractional_scale(),
                x: geo.loc.x,
                y: geo.loc.y,
                usable: [usable.loc.x, usable.loc.y, usable.size.w, usable.size.h],
            }
        })
        .collect()
}

fn seat(state: &Tessera) -> SeatInfo {
    let mut touch: Vec<TouchPointInfo> = state
        .touch_points
        .iter()
        .map(|(slot, at)| TouchPointInfo {
            slot: *slot,
            x: at.x,
            y: at.y,
        })
        .collect();
    touch.sort_by_key(|t| t.slot);
    SeatInfo {
        devices: state
            .backend
            .input_devices(&state.config.input, &state.output_names()),
        pointer: [state.pointer_location.x, state.pointer_location.y],
        buttons: state.pointer_buttons.clone(),
        touch,
    }
}

fn windows(state: &Tessera) -> Vec<WindowInfo> {
    let focused = state.shell.focus.front().cloned();
    state
        .shell
        .all_windows(&state.space)
        .filter_map(|w| {
            let t = w.toplevel()?;
            let (app_id, title) = crate::shell::app_id_and_title(w);
            let minimized = state.shell.minimized.contains(w);
            let geometry = (!minimized)
                .then(|| state.space.element_geometry(w))
                .flatten()
                .map(|g| [g.loc.x, g.loc.y, g.size.w, g.size.h]);
            let maximized =
                t.with_pending_state(|s| s.states.contains(xdg_toplevel::State::Maximized));
            let parent = t
                .parent()
                .and_then(|p| state.shell.window_for_surface(&state.space, &p))
                .map(|p| window_id(&p));
            Some(WindowInfo {
                id: window_id(w),
                app_id,
                title,
                geometry,
                focused: focused.as_ref() == Some(w),
                maximized,
                fullscreen: meta(w, |m| m.fullscreen_on.is_some()),
                minimized,
                dialog: meta(w, |m| m.dialog),
                parent,
                surface: Some(surface_info(state, t)),
            })
        })
        .collect()
}

fn surface_info(state: &Tessera, toplevel: &ToplevelSurface) -> SurfaceInfo {
    let surface = toplevel.wl_surface();
    let (commits, buffer_commits, last_commit_ms) = CommitStamp::read(surface);
    let (frame_callbacks_waiting, buffer, unacked_configures) = with_states(surface, |states| {
        let waiting = states
            .cached_state
            .get::<SurfaceAttributes>()
            .current()
            .frame_callbacks
            .len();
        let buffer = states
            .data_map
            .get::<RendererSurfaceStateUserData>()
            .and_then(|s| s.lock().ok().and_then(|s| s.buffer_size()))
            .map(|size| [size.w, size.h]);
        let unacked = states
            .data_map
            .get::<XdgToplevelSurfaceData>()
            .and_then(|d| d.lock().ok().map(|d| d.pending_configures().len()))
            .unwrap_or(0);
        (waiting, buffer, unacked)
    });
    let keyboard_focus = state
        .seat
        .get_keyboard()
        .and_then(|k| k.current_focus())
        .is_some_and(|f| &f == surface);
    SurfaceInfo {
        commits,
        buffer_commits,
        last_commit_ms,
        frame_callbacks_waiting,
        unacked_configures,
        keyboard_focus,
        buffer,
    }
}

fn screenshot(state: &mut Tessera, output: Option<&str>, path: &Path, cursor: bool) -> Response {
    let outputs = state.outputs();
    let target = match output {
        Some(name) => outputs.iter().find(|o| o.name() == name),
        None => outputs.first(),
    };
    let Some(target) = target.cloned() else {
        return Response::err(format!("no output {}", output.unwrap_or("at all")));
    };
    let capture = match state.render_capture(&target, cursor) {
        Ok(c) => c,
        Err(e) => return Response::err(e),
    };
    match crate::screenshot::write_png(path, &capture) {
        Ok(()) => Response::ok(serde_json::json!({
            "output": target.name(),
            "path": path,
            "width": capture.width,
            "height": capture.height,
        })),
        Err(e) => Response::err(format!("{}: {e}", path.display())),
    }
}
