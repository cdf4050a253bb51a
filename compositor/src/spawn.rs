//! Starting clients (autostart, `spawn` bindings) with the session's environment.

use std::process::{Command, Stdio};

use crate::state::Tessera;

/// Runs `cmd` through `sh -c` with WAYLAND_DISPLAY and TESSERA_SOCKET set. A thread
/// reaps it, so finished clients do not linger as zombies.
pub fn spawn(state: &Tessera, cmd: &str) {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(cmd).stdin(Stdio::null());
    if let Some(name) = &state.socket_name {
        c.env("WAYLAND_DISPLAY", name);
    }
    if let Some(ipc) = &state.ipc_socket {
        c.env("TESSERA_SOCKET", ipc);
    }
    c.env("XDG_SESSION_TYPE", "wayland")
        .env("XDG_CURRENT_DESKTOP", "Tessera")
        .envs(state.cursor.environment());
    c.env_remove("DISPLAY");
    if crate::render::llvmpipe::set_by_session() {
        c.env_remove(crate::render::llvmpipe::VAR);
    }
    // Readiness is tessera's to report (NotifyAccess=main), not its children's.
    c.env_remove("NOTIFY_SOCKET");
    match c.spawn() {
        Ok(mut child) => {
            tracing::info!(cmd, pid = child.id(), "spawned");
            let _ = std::thread::Builder::new()
                .name("reaper".into())
                .spawn(move || {
                    let _ = child.wait();
                });
        }
        Err(err) => tracing::warn!(cmd, %err, "cannot spawn"),
    }
}

/// Exports WAYLAND_DISPLAY, XDG_CURRENT_DESKTOP, XDG_SESSION_TYPE and the cursor
/// theme to the systemd user manager and D-Bus activation environment, when they
/// exist.
pub fn export_environment(state: &Tessera) {
    let Some(name) = &state.socket_name else {
        return;
    };
    if std::env::var_os("TESSERA_NO_EXPORT").is_some()
        || (std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none()
            && std::env::var_os("XDG_RUNTIME_DIR").is_none())
    {
        return;
    }
    let mut vars = vec![
        ("WAYLAND_DISPLAY", name.to_string_lossy().into_owned()),
        ("XDG_CURRENT_DESKTOP", "Tessera".to_owned()),
        ("XDG_SESSION_TYPE", "wayland".to_owned()),
    ];
    vars.extend(state.cursor.environment());
    let names = vars.iter().map(|(k, _)| *k);
    for program in [
        ["systemctl", "--user", "import-environment"],
        ["dbus-update-activation-environment", "--systemd", ""],
    ] {
        let status = Command::new(program[0])
            .args(program[1..].iter().filter(|a| !a.is_empty()))
            .args(names.clone())
            .envs(vars.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        tracing::debug!(program = program[0], ?status, "environment export");
    }
}
