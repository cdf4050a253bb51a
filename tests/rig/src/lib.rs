//! The shared test rig.
//!
//! Every integration test that needs a real peer gets it from here: a [`Swtpm`], an
//! [`Nginx`] serving a directory, or a QEMU [`Vm`]. Each is started by the test itself,
//! on loopback or in a temp dir, and is stopped and cleaned up on `Drop`, including
//! when the test panics. Children also get `PR_SET_PDEATHSIG`, so a test runner that is
//! killed outright does not leave them behind either.
//!
//! [`artifacts`] fetches and caches the Debian artifacts the VM tests boot (kernel,
//! modules, systemd-boot, busybox); [`initrd`] turns them into a bootable initrd.

pub mod appliance;
pub mod artifacts;
pub mod cpio;
pub mod initrd;
pub mod nginx;
pub mod picture;
pub mod ports;
pub mod process;
pub mod qmp;
pub mod swtpm;
pub mod vm;

pub use artifacts::Artifacts;
pub use nginx::Nginx;
pub use swtpm::Swtpm;
pub use vm::{Vm, VmConfig};

/// Errors from the rig. Tests usually just `unwrap()` them; the messages say which
/// service failed and carry its log so a failure is diagnosable from CI output alone.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program}` is not installed (run `cargo xtask deps`)")]
    Missing { program: String },
    #[error("{service} did not become ready: {detail}")]
    NotReady { service: String, detail: String },
    #[error("{0}")]
    Failed(String),
}

pub type Result<T, E = RigError> = std::result::Result<T, E>;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RigError {
    let what = what.into();
    move |source| RigError::Io { what, source }
}

/// Finds `program` on PATH (and in the sbin directories, which a non-root PATH lacks).
pub fn which(program: &str) -> Result<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(std::path::PathBuf::from);
    std::env::split_paths(&path)
        .chain(extra)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| RigError::Missing {
            program: program.to_owned(),
        })
}
