//! `tessera msg`: JSON lines over a unix socket under $XDG_RUNTIME_DIR.

pub mod client;
pub mod proto;
pub mod server;
