//! A/B updates in systemd-sysupdate's model: a signed manifest, complete version sets,
//! a slot that is never the booted one, verification before activation, and a UKI
//! rename as the single activation point.

pub mod apply;
pub mod catalog;
pub mod config;
pub mod manifest;
pub mod publish;
pub mod slots;
pub mod source;
