//! Window policy as plain functions over rectangles: where a new toplevel goes, how
//! focus moves. No Wayland objects here, so every rule is unit-tested directly.

use smithay::utils::{Logical, Point, Rectangle, Size};

/// What kind of toplevel is being placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A main window: opens maximized, Chromebook style.
    Normal,
    /// A main window in a desktop-style session (`[shell] new_windows =
    /// "floating"`): floats at the size the client picks.
    Desktop,
    /// A window with a parent: floats centred over it.
    Dialog { parent: Rectangle<i32, Logical> },
}

/// The first configure a toplevel gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Maximized to the usable area of the output.
    Maximized(Rectangle<i32, Logical>),
    /// Floating; a zero size lets the client choose.
    Floating { size: Size<i32, Logical> },
}

/// Decides the initial state of a toplevel. `usable` is the output's area minus the
/// exclusive zones of layer surfaces; `min`/`max` are the client's hints (0 = unset).
pub fn initial_placement(
    role: Role,
    usable: Rectangle<i32, Logical>,
    min: Size<i32, Logical>,
    max: Size<i32, Logical>,
) -> Placement {
    match role {
        Role::Dialog { .. } | Role::Desktop => Placement::Floating {
            size: Size::from((0, 0)),
        },
        Role::Normal => {
            // A client that caps its size below the usable area cannot be maximized
            // without breaking its own constraint; it floats at its maximum instead.
            let capped =
                (max.w > 0 && max.w < usable.size.w) || (max.h > 0 && max.h < usable.size.h);
            let too_big = min.w > usable.size.w || min.h > usable.size.h;
            if capped || too_big {
                Placement::Floating {
                    size: Size::from((
                        clamp_dim(usable.size.w, min.w, max.w),
                        clamp_dim(usable.size.h, min.h, max.h),
                    )),
                }
            } else {
                Placement::Maximized(usable)
            }
        }
    }
}

fn clamp_dim(want: i32, min: i32, max: i32) -> i32 {
    let v = if max > 0 { want.min(max) } else { want };
    v.max(min)
}

/// Where a floating window of `size` goes: centred over `over` (its parent, or the
/// usable area), then pulled back inside `usable` so its top-left corner stays visible.
pub fn centred(
    size: Size<i32, Logical>,
    over: Rectangle<i32, Logical>,
    usable: Rectangle<i32, Logical>,
) -> Point<i32, Logical> {
    let x = over.loc.x + (over.size.w - size.w) / 2;
    let y = over.loc.y + (over.size.h - size.h) / 2;
    let max_x = usable.loc.x + (usable.size.w - size.w).max(0);
    let max_y = usable.loc.y + (usable.size.h - size.h).max(0);
    Point::from((x.clamp(usable.loc.x, max_x), y.clamp(usable.loc.y, max_y)))
}

/// Steps a floating window's spot down and right while another window's top-left
/// corner already sits there, so that a second floater never hides the first one
/// exactly (KWin's and Windows' cascade). Wraps back to the top-left of `usable`
/// rather than walking off screen.
pub fn cascade(
    start: Point<i32, Logical>,
    size: Size<i32, Logical>,
    taken: &[Point<i32, Logical>],
    usable: Rectangle<i32, Logical>,
) -> Point<i32, Logical> {
    const STEP: i32 = 32;
    let max_x = usable.loc.x + (usable.size.w - size.w).max(0);
    let max_y = usable.loc.y + (usable.size.h - size.h).max(0);
    let mut at = start;
    // Bounded: every window can push us at most one step.
    for _ in 0..=taken.len() {
        if !taken.contains(&at) {
            break;
        }
        at = Point::from((at.x + STEP, at.y + STEP));
        if at.x > max_x || at.y > max_y {
            at = usable.loc;
        }
    }
    at
}

/// Most-recently-focused first. The front element holds the keyboard focus.
#[derive(Debug, Clone)]
pub struct FocusStack<T> {
    items: Vec<T>,
}

impl<T> Default for FocusStack<T> {
    fn default() -> Self {
        Self { items: Vec::new() }
    }
}

impl<T: Clone + PartialEq> FocusStack<T> {
    pub fn front(&self) -> Option<&T> {
        self.items.first()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Moves `item` to the front (adding it if new).
    pub fn activate(&mut self, item: T) {
        self.items.retain(|i| *i != item);
        self.items.insert(0, item);
    }

    /// Removes `item`; returns what should hold the focus now: the previously
    /// focused item when `item` was in front, else the unchanged front.
    pub fn remove(&mut self, item: &T) -> Option<T> {
        self.items.retain(|i| i != item);
        self.items.first().cloned()
    }

    /// Moves `item` behind every other one; returns the new front.
    pub fn send_to_back(&mut self, item: &T) -> Option<T> {
        self.items.retain(|i| i != item);
        self.items.push(item.clone());
        self.items.first().cloned()
    }

    /// Alt+Tab: forward brings the next most recent to the front and sends the
    /// current front to the back, so repeated presses visit every window.
    pub fn cycle(&mut self, forward: bool) -> Option<T> {
        if self.items.len() < 2 {
            return self.items.first().cloned();
        }
        if forward {
            self.items.rotate_left(1);
        } else {
            self.items.rotate_right(1);
        }
        self.items.first().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: i32, y: i32, w: i32, h: i32) -> Rectangle<i32, Logical> {
        Rectangle::new((x, y).into(), (w, h).into())
    }

    #[test]
    fn floaters_cascade_instead_of_stacking_exactly() {
        let usable = rect(0, 0, 1000, 800);
        let size = Size::from((400, 300));
        let start = Point::from((300, 250));
        assert_eq!(cascade(start, size, &[], usable), start);
        let one = cascade(start, size, &[start], usable);
        assert_eq!(one, Point::from((332, 282)));
        let two = cascade(start, size, &[start, one], usable);
        assert_eq!(two, Point::from((364, 314)));
        // Off the bottom-right edge, it wraps to the usable area's corner.
        let edge = Point::from((600, 500));
        assert_eq!(cascade(edge, size, &[edge], usable), usable.loc);
        // However crowded, it terminates.
        let crowded: Vec<_> = (0..100).map(|i| Point::from((i, i))).collect();
        let _ = cascade(Point::from((0, 0)), size, &crowded, usable);
    }

    #[test]
    fn normal_windows_open_maximized_in_the_usable_area() {
        let usable = rect(0, 32, 1280, 688);
        let p = initial_placement(Role::Normal, usable, (0, 0).into(), (0, 0).into());
        assert_eq!(p, Placement::Maximized(usable));
    }

    #[test]
    fn desktop_sessions_let_the_client_pick_the_size() {
        let usable = rect(0, 0, 1280, 720);
        let p = initial_placement(Role::Desktop, usable, (0, 0).into(), (0, 0).into());
        assert_eq!(
            p,
            Placement::Floating {
                size: (0, 0).into()
            }
        );
    }

    #[test]
    fn size_capped_windows_float() {
        let usable = rect(0, 0, 1280, 720);
        let p = initial_placement(Role::Normal, usable, (200, 100).into(), (400, 300).into());
        assert_eq!(
            p,
            Placement::Floating {
                size: (400, 300).into()
            }
        );
        let p = initial_placement(Role::Normal, usable, (2000, 100).into(), (0, 0).into());
        assert_eq!(
            p,
            Placement::Floating {
                size: (2000, 720).into()
            }
        );
    }

    #[test]
    fn dialogs_float_centred_over_their_parent() {
        let parent = rect(0, 0, 1280, 720);
        let p = initial_placement(
            Role::Dialog { parent },
            parent,
            (0, 0).into(),
            (0, 0).into(),
        );
        assert_eq!(
            p,
            Placement::Floating {
                size: (0, 0).into()
            }
        );
        assert_eq!(
            centred((200, 100).into(), parent, parent),
            Point::from((540, 310))
        );
    }

    #[test]
    fn centring_keeps_the_window_on_screen() {
        let usable = rect(0, 0, 800, 600);
        // A dialog bigger than the screen: its top-left stays visible.
        assert_eq!(
            centred((1000, 900).into(), usable, usable),
            Point::from((0, 0))
        );
        // A parent near the right edge: the dialog is pulled back inside.
        let parent = rect(700, 500, 100, 100);
        assert_eq!(
            centred((300, 200).into(), parent, usable),
            Point::from((500, 400))
        );
    }

    #[test]
    fn focus_returns_to_the_previous_window_on_close() {
        let mut s = FocusStack::default();
        s.activate("a");
        s.activate("b");
        s.activate("c");
        assert_eq!(s.front(), Some(&"c"));
        assert_eq!(s.remove(&"c"), Some("b"));
        // Closing a background window does not move the focus.
        s.activate("c");
        assert_eq!(s.remove(&"a"), Some("c"));
        assert_eq!(s.remove(&"c"), Some("b"));
        assert_eq!(s.remove(&"b"), None);
    }

    #[test]
    fn a_minimized_window_goes_to_the_back() {
        let mut s = FocusStack::default();
        for w in ["a", "b", "c"] {
            s.activate(w);
        }
        assert_eq!(s.send_to_back(&"c"), Some("b"));
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), ["b", "a", "c"]);
        let mut one = FocusStack::default();
        one.activate("x");
        assert_eq!(one.send_to_back(&"x"), Some("x"));
    }

    #[test]
    fn cycling_visits_every_window_and_back() {
        let mut s = FocusStack::default();
        for w in ["a", "b", "c"] {
            s.activate(w);
        }
        // front: c, then b, a.
        assert_eq!(s.cycle(true), Some("b"));
        assert_eq!(s.cycle(true), Some("a"));
        assert_eq!(s.cycle(true), Some("c"));
        assert_eq!(s.cycle(false), Some("a"));
        let mut one = FocusStack::default();
        one.activate("x");
        assert_eq!(one.cycle(true), Some("x"));
        assert_eq!(FocusStack::<&str>::default().cycle(true), None);
    }
}
