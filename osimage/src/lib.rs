//! osimage: the image-based OS tooling under Tessera.
//!
//! Built so far: [`version`], systemd's version comparison, which decides which image,
//! UKI or update is newest everywhere else in this crate; and [`verity`], dm-verity
//! hash trees byte-identical to `veritysetup format`, hashed on all cores. The formats (GPT, verity,
//! UKI, LUKS2/TPM2) land with their issues, each as a module of pure planning logic
//! with the I/O behind small traits.

pub mod boot;
pub mod build;
pub mod definition;
pub mod disk;
pub mod esp;
pub mod gpt;
pub mod install;
pub mod luks;
pub mod pcr;
pub mod provenance;
pub mod reset;
pub mod sign;
pub mod tpm2;
pub mod uki;
pub mod update;
pub mod verity;
pub mod version;
