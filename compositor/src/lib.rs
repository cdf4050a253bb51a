//! Tessera, the compositor: one state struct ([`state::Tessera`]), smithay handlers
//! per concern ([`handlers`]), window policy ([`shell`]), rendering ([`render`]),
//! backends ([`backend`]) and the `tessera msg` IPC ([`ipc`]).

// smithay's state and renderer types do not implement Debug.
#![allow(missing_debug_implementations)]

pub mod backend;
pub mod cli;
pub mod config;
pub mod cursor;
pub mod dmabuf;
mod handlers;
pub mod input;
pub mod ipc;
pub mod notify;
pub mod render;
pub mod retired;
pub mod sandbox;
pub mod scanout;
pub mod screencopy;
pub mod screenshot;
pub mod session;
pub mod shell;
pub mod spawn;
pub mod state;
pub mod touch;

#[cfg(test)]
mod tests;

/// sysexits' EX_UNAVAILABLE: the requested service is not available.
pub const EXIT_UNAVAILABLE: i32 = 69;
/// sysexits' EX_CONFIG: the configuration is invalid.
pub const EXIT_CONFIG: i32 = 78;
