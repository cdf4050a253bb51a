//! Elements the hardware keeps refusing. The policy offers an element a plane;
//! smithay's DrmCompositor then tries it in a TEST commit and composites it when
//! the kernel says no. Each frame's outcome is recorded here per element, and
//! [`Element::scanout_failures`](super::Element) is read from it, so that after
//! [`FAILURE_LIMIT`] refusals in a row the element is composited without being
//! tried, and its surface's feedback loses the scanout tranche (the client stops
//! allocating for a plane it will not get). After [`RETRY_AFTER_FRAMES`] it is
//! offered again: a mode or plane change may have made room.

use std::collections::{HashMap, HashSet};

use super::{Composited, FAILURE_LIMIT, Placement, Plan};

/// Frames an element that kept failing stays composited before it is tried again.
pub const RETRY_AFTER_FRAMES: u32 = 300;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Count {
    /// Refusals in a row.
    failures: u32,
    /// Frames composited since the refusals reached the limit.
    held_back: u32,
}

/// One output's record (a plane belongs to one CRTC).
#[derive(Debug, Default, Clone)]
pub struct ScanoutFailures {
    by_element: HashMap<u64, Count>,
}

impl ScanoutFailures {
    /// What the policy is told about element `id`.
    pub fn of(&self, id: u64) -> u32 {
        self.by_element.get(&id).map_or(0, |c| c.failures)
    }

    /// A committed frame: `plan` is what the policy offered, `placed` the elements
    /// the hardware took. Elements no longer shown are forgotten.
    pub fn record(&mut self, plan: &Plan, placed: &HashSet<u64>) {
        let mut next = HashMap::with_capacity(plan.placements.len());
        for &(id, placement) in &plan.placements {
            let mut count = self.by_element.get(&id).copied().unwrap_or_default();
            match placement {
                Placement::Primary(_) | Placement::Overlay(_) | Placement::Cursor(_) => {
                    if placed.contains(&id) {
                        count = Count::default();
                    } else {
                        count.failures = (count.failures + 1).min(FAILURE_LIMIT);
                    }
                }
                Placement::Composited(Composited::KeepsFailing) => {
                    count.held_back += 1;
                    if count.held_back >= RETRY_AFTER_FRAMES {
                        count = Count::default();
                    }
                }
                _ => {}
            }
            if count != Count::default() {
                next.insert(id, count);
            }
        }
        self.by_element = next;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tables::*;
    use super::super::*;
    use super::*;

    const OUT: (i32, i32) = (1920, 1080);

    #[test]
    fn refused_three_frames_in_a_row_an_element_is_composited_then_tried_again() {
        let caps = (table_by_name("amd").unwrap().build)();
        let render: FormatSet = caps
            .planes
            .iter()
            .flat_map(|p| p.formats.iter().copied())
            .collect();
        let sw = Switches::default();
        let format = PlaneFormat {
            fourcc: XRGB8888,
            modifier: AMD_GFX10_3_DCC,
        };
        let mut failures = ScanoutFailures::default();
        let frame = |failures: &ScanoutFailures| {
            let mut e = Element::surface(7, Buffer::Dmabuf(format), (0, 0), OUT);
            e.scanout_failures = failures.of(7);
            let p = plan(&caps, &sw, OUT, std::slice::from_ref(&e));
            let feedback = surface_feedback(&caps, &sw, &render, OUT, &e);
            (p, feedback.has_scanout())
        };
        let refused = HashSet::new();

        // A refusal now and then is not a pattern: one success starts over.
        for _ in 0..FAILURE_LIMIT - 1 {
            let (p, _) = frame(&failures);
            failures.record(&p, &refused);
        }
        let (p, _) = frame(&failures);
        failures.record(&p, &HashSet::from([7]));
        assert_eq!(failures.of(7), 0);

        for _ in 0..FAILURE_LIMIT {
            let (p, scanout) = frame(&failures);
            assert_eq!(p.placement(7), Some(Placement::Primary(55)));
            assert!(scanout, "offered the primary plane, its tranche stays");
            failures.record(&p, &refused);
        }
        for _ in 0..RETRY_AFTER_FRAMES {
            let (p, scanout) = frame(&failures);
            assert_eq!(
                p.placement(7),
                Some(Placement::Composited(Composited::KeepsFailing))
            );
            assert!(!scanout, "the feedback tells the client to stop trying");
            failures.record(&p, &refused);
        }
        let (p, scanout) = frame(&failures);
        assert_eq!(p.placement(7), Some(Placement::Primary(55)), "tried again");
        assert!(scanout);
    }

    #[test]
    fn elements_that_are_gone_are_forgotten_and_composited_ones_do_not_count() {
        let mut failures = ScanoutFailures::default();
        let offered = Plan {
            placements: vec![(1, Placement::Overlay(3)), (2, Placement::Primary(1))],
            clear_colour: None,
        };
        failures.record(&offered, &HashSet::from([2]));
        assert_eq!((failures.of(1), failures.of(2)), (1, 0));
        let composited = Plan {
            placements: vec![(1, Placement::Composited(Composited::Disabled))],
            clear_colour: None,
        };
        failures.record(&composited, &HashSet::new());
        assert_eq!(failures.of(1), 1, "not offered, not refused");
        failures.record(
            &Plan {
                placements: vec![(2, Placement::Primary(1))],
                clear_colour: None,
            },
            &HashSet::from([2]),
        );
        assert_eq!(failures.of(1), 0, "gone from the output");
    }
}
