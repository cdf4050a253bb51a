//! osimage: the image-based OS tooling under Tessera.
//!
//! [`version`] is systemd's version comparison, which decides which image, UKI or
//! update is newest everywhere else in this crate. The formats each live in a module
//! of pure planning logic with the I/O behind small traits: [`gpt`], [`verity`],
//! [`uki`], [`pcr`], [`build`], [`update`], [`boot`]. [`tpm2`] is a TPM 2.0 client
//! (salted sessions, parameter encryption, policy digests), [`luks`] reads and writes
//! systemd-tpm2 tokens on LUKS2 volumes, [`reset`] handles factory reset requests, and [`firstboot`]
//! completes an installed disk in the initrd (B slot, encrypted root, resets).

pub mod boot;
pub mod build;
pub mod definition;
pub mod disk;
pub mod esp;
pub mod firstboot;
pub mod gpt;
pub mod install;
pub mod luks;
pub mod mounts;
pub mod pcr;
pub mod provenance;
pub mod reset;
pub mod sign;
pub mod tpm2;
pub mod uki;
pub mod update;
pub mod verity;
pub mod version;
