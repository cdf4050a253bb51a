//! smithay handler traits, one file per concern.

pub(crate) mod compositor;
mod layer;
mod seat;
mod xdg;
mod xdg_wm_base;
