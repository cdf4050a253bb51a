//! smithay handler traits, one file per concern.

mod compositor;
mod layer;
mod seat;
mod xdg;
