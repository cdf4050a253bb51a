//! Tessera, the compositor.
//!
//! This crate currently holds the command line surface (backend choice and virtual
//! output specs). The smithay state, backends, shell and renderer land with the
//! compositor session issue; until then the binary says so and exits with
//! [`EXIT_UNAVAILABLE`] rather than pretending to run.

pub mod cli;

/// sysexits' EX_UNAVAILABLE: the requested service is not available.
pub const EXIT_UNAVAILABLE: i32 = 69;
