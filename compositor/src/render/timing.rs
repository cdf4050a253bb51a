//! How long an output's frames take to render: from building its elements to
//! the last pixel drawn, over the most recent frames.
//!
//! The compositor benchmark reads this through `tessera msg planes` to tell the
//! render work of a frame (what damage tracking saves) from the fixed cost of
//! a frame cycle (wakeups, dispatch, frame callbacks), which the process's CPU
//! time lumps together.
//!
//! An output's first frame is reported on its own. It pays once for what the
//! renderer sets up (shaders compiled, the swapchain allocated): seconds on
//! llvmpipe under QEMU, against milliseconds after. An idle kms output draws
//! only when something changes, so in a quiet session that one frame would be
//! the p99 and most of the mean for a long time.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Frames kept: enough for a stable p99, few enough that a summary follows
/// what the output shows now rather than its start-up.
pub const WINDOW: usize = 256;

/// The recent render times of one output.
#[derive(Debug, Clone, Default)]
pub struct RenderTimes {
    first: Option<Duration>,
    recent: VecDeque<Duration>,
    frames: u64,
}

/// What `tessera msg planes` reports of [`RenderTimes`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RenderTimeSummary {
    /// Frames rendered since the output appeared.
    pub frames: u64,
    /// The first frame, with the renderer's one-time set-up.
    pub first_us: f64,
    /// How many of the most recent frames the figures below cover: every frame
    /// but the first, unless it is the only one.
    pub window: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
}

impl RenderTimes {
    pub fn record(&mut self, took: Duration) {
        self.frames += 1;
        if self.first.is_none() {
            self.first = Some(took);
            return;
        }
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(took);
    }

    /// None before the first frame.
    pub fn summary(&self) -> Option<RenderTimeSummary> {
        let first = self.first?;
        let mut sorted: Vec<Duration> = if self.recent.is_empty() {
            vec![first]
        } else {
            self.recent.iter().copied().collect()
        };
        sorted.sort_unstable();
        // Nearest rank: the smallest time at least q of the frames do not exceed.
        let rank = |q: f64| {
            let i = (q * sorted.len() as f64).ceil() as usize;
            sorted[i.clamp(1, sorted.len()) - 1]
        };
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let total: Duration = sorted.iter().sum();
        Some(RenderTimeSummary {
            frames: self.frames,
            first_us: us(first),
            window: sorted.len(),
            p50_us: us(rank(0.50)),
            p99_us: us(rank(0.99)),
            mean_us: us(total) / sorted.len() as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn nothing_rendered_has_no_summary() {
        assert_eq!(RenderTimes::default().summary(), None);
    }

    #[test]
    fn the_first_frame_stands_apart_once_there_are_others() {
        let mut t = RenderTimes::default();
        t.record(micros(4_000_000));
        let s = t.summary().unwrap();
        assert_eq!((s.frames, s.window, s.first_us), (1, 1, 4e6));
        assert_eq!((s.p50_us, s.p99_us), (4e6, 4e6));
        for _ in 0..11 {
            t.record(micros(4000));
        }
        let s = t.summary().unwrap();
        assert_eq!((s.frames, s.window, s.first_us), (12, 11, 4e6));
        assert_eq!((s.p50_us, s.p99_us, s.mean_us), (4000.0, 4000.0, 4000.0));
    }

    #[test]
    fn percentiles_are_nearest_rank_over_the_recent_frames() {
        let mut t = RenderTimes::default();
        t.record(micros(9999));
        for n in 1..=100 {
            t.record(micros(n));
        }
        let s = t.summary().unwrap();
        assert_eq!((s.frames, s.window), (101, 100));
        assert_eq!(s.p50_us, 50.0);
        assert_eq!(s.p99_us, 99.0);
        assert_eq!(s.mean_us, 50.5);
    }

    #[test]
    fn only_the_last_window_of_frames_counts() {
        let mut t = RenderTimes::default();
        // A slow start-up (first frames draw everything) ...
        for _ in 0..=WINDOW {
            t.record(micros(5000));
        }
        // ... then a steady state of small changes.
        for _ in 0..WINDOW {
            t.record(micros(40));
        }
        let s = t.summary().unwrap();
        assert_eq!(s.frames, 2 * WINDOW as u64 + 1);
        assert_eq!(s.window, WINDOW);
        assert_eq!((s.p50_us, s.p99_us, s.mean_us), (40.0, 40.0, 40.0));
        t.record(micros(5000));
        assert_eq!(t.summary().unwrap().p99_us, 40.0);
        assert_eq!(t.summary().unwrap().window, WINDOW);
    }
}
