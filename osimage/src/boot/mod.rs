//! systemd-boot: the entries on the ESP, boot counting, blessing, and the EFI
//! variables the loader shares with the OS.

pub mod bootdisk;
pub mod efivars;
pub mod entry;
pub mod esp;
pub mod status;

pub use entry::BootEntry;
