//! In-process tests (the niri model): the real compositor state on a calloop loop
//! with a headless output, and clients written with wayland-client over
//! `UnixStream::pair`.

mod client;
mod cursor;
mod dmabuf;
mod dmabuf_client;
mod fixture;
mod frames;
mod fuzz;
mod hostile;
mod idle;
mod kept;
mod lock;
mod sandbox;
mod scenes;
mod screencopy;
mod shell;
mod touch;
