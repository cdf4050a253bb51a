//! Command implementations too long to keep in main.rs.

pub(crate) mod boot;
pub(crate) mod firstboot;
pub(crate) mod genkey;
pub(crate) mod reset;
pub(crate) mod unlock;
pub(crate) mod update;
pub(crate) mod verity;
