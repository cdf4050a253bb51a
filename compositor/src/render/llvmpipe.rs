//! How many threads Mesa's software GL rasterizes on.
//!
//! Where GLES has no GPU (headless `--renderer gles`, a VM's kms_swrast) Mesa draws
//! with llvmpipe, which by default hands every flush to one raster thread per core
//! and waits for them at a barrier. For a compositor most frames redraw a little
//! damage, and that hand-off (two wake-ups and a barrier per thread) costs more CPU
//! than the drawing: on the 2-core development machine, drawing on the
//! compositor's own thread took the one-small-change frame from about 560 to about
//! 450 µs of CPU, and full redraws did not get slower, since the raster threads
//! were competing with the clients for the same two cores. Where cores are
//! plentiful the threads can shorten full redraws of large outputs, so `auto`
//! keeps Mesa's default above four cores. That threshold is a judgement, not a
//! measurement: only the 2-core machine was measured.
//!
//! llvmpipe reads its count only from `LP_NUM_THREADS`, once, when the driver
//! loads; so the session sets it before any backend starts, and takes it back out
//! of its clients' environment, where it was never asked for.

use std::sync::atomic::{AtomicBool, Ordering};

use tessera_config::compositor::RasterThreads;

/// The variable llvmpipe reads.
pub const VAR: &str = "LP_NUM_THREADS";

/// Machines with up to this many cores rasterize on the compositor's thread under
/// `auto`.
pub const AUTO_MAX_CORES: usize = 4;

static SET_BY_SESSION: AtomicBool = AtomicBool::new(false);

/// The count to put in `LP_NUM_THREADS`, or `None` to leave the environment as it
/// is: a value already there is the user's, and wins.
pub fn raster_threads(setting: RasterThreads, already_set: bool, cores: usize) -> Option<u8> {
    if already_set {
        return None;
    }
    match setting {
        RasterThreads::Count(n) => Some(n),
        RasterThreads::Auto if cores <= AUTO_MAX_CORES => Some(0),
        RasterThreads::Auto => None,
    }
}

/// Sets `LP_NUM_THREADS` from the config. Call it from the main thread before
/// anything starts a thread or loads a GL driver.
pub fn apply(setting: RasterThreads) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let Some(n) = raster_threads(setting, std::env::var_os(VAR).is_some(), cores) else {
        return;
    };
    // SAFETY: the session calls this first thing on its main thread, before the
    // backend, EGL or any helper thread exists, so nothing reads the environment
    // concurrently.
    unsafe { std::env::set_var(VAR, n.to_string()) };
    SET_BY_SESSION.store(true, Ordering::Relaxed);
    tracing::debug!(threads = n, cores, "llvmpipe raster threads");
}

/// Whether the session put `LP_NUM_THREADS` in its own environment, so that
/// clients it starts should not inherit it.
pub fn set_by_session() -> bool {
    SET_BY_SESSION.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_draws_on_the_compositor_thread_on_small_machines_only() {
        assert_eq!(raster_threads(RasterThreads::Auto, false, 2), Some(0));
        assert_eq!(raster_threads(RasterThreads::Auto, false, 4), Some(0));
        assert_eq!(raster_threads(RasterThreads::Auto, false, 16), None);
    }

    #[test]
    fn a_count_is_used_as_given_and_the_environment_wins() {
        assert_eq!(raster_threads(RasterThreads::Count(3), false, 2), Some(3));
        assert_eq!(raster_threads(RasterThreads::Count(0), false, 64), Some(0));
        assert_eq!(raster_threads(RasterThreads::Count(3), true, 2), None);
        assert_eq!(raster_threads(RasterThreads::Auto, true, 2), None);
    }
}
