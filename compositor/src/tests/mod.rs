//! In-process tests: the real state on a calloop loop with wayland-client clients.
