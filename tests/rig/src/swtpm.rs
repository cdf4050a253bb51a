//! A real TPM 2.0: swtpm, with its state in a temp dir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{Service, wait_until};
use crate::{Result, RigError, io_err, ports, which};

/// How the TPM is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwtpmTransport {
    /// Data port `port`, control port `port + 1`, both on 127.0.0.1.
    Tcp { port: u16 },
    /// A control socket for QEMU's `-tpmdev emulator` (the data channel is negotiated
    /// over it).
    Unix { socket: PathBuf },
}

/// A running swtpm. Stopped on drop; its state directory is removed with it.
#[derive(Debug)]
pub struct Swtpm {
    service: Service,
    transport: SwtpmTransport,
    // Declared last so the process is gone before its state is deleted.
    state: TempDir,
}

impl Swtpm {
    /// A fresh TPM on free loopback TCP ports.
    pub fn tcp() -> Result<Swtpm> {
        let state = tempfile::Builder::new()
            .prefix("tessera-swtpm-")
            .tempdir()
            .map_err(io_err("swtpm state dir"))?;
        Swtpm::tcp_in(state)
    }

    fn tcp_in(state: TempDir) -> Result<Swtpm> {
        let mut last = String::new();
        // The ports can be taken between probing and binding; try a few pairs.
        for _ in 0..5 {
            let port = ports::free_port_pair().map_err(io_err("free port"))?;
            let transport = SwtpmTransport::Tcp { port };
            match start(state.path(), &transport) {
                Ok(service) => {
                    return Ok(Swtpm {
                        service,
                        transport,
                        state,
                    });
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(RigError::NotReady {
            service: "swtpm".into(),
            detail: last,
        })
    }

    /// A TPM on free loopback TCP ports whose only active PCR banks are `banks`
    /// (e.g. `["sha1"]`), manufactured with `swtpm_setup --pcr-banks`: the firmware
    /// setting some machines ship with.
    pub fn tcp_with_banks(banks: &[&str]) -> Result<Swtpm> {
        let state = tempfile::Builder::new()
            .prefix("tessera-swtpm-")
            .tempdir()
            .map_err(io_err("swtpm state dir"))?;
        let out = Command::new(which("swtpm_setup")?)
            .args(["--tpm2", "--overwrite", "--pcr-banks", &banks.join(",")])
            .arg("--tpmstate")
            .arg(state.path())
            .output()
            .map_err(io_err("swtpm_setup"))?;
        if !out.status.success() {
            return Err(RigError::NotReady {
                service: "swtpm_setup".into(),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Swtpm::tcp_in(state)
    }

    /// A fresh TPM behind a unix control socket, for `-tpmdev emulator`.
    pub fn unix() -> Result<Swtpm> {
        let state = tempfile::Builder::new()
            .prefix("tessera-swtpm-")
            .tempdir()
            .map_err(io_err("swtpm state dir"))?;
        let transport = SwtpmTransport::Unix {
            socket: state.path().join("swtpm.sock"),
        };
        let service = start(state.path(), &transport)?;
        Ok(Swtpm {
            service,
            transport,
            state,
        })
    }

    /// Stops swtpm and starts it again on the same state and ports, like a reboot of
    /// the machine the TPM sits in (PCRs reset, persistent objects and NV kept).
    pub fn restart(&mut self) -> Result<()> {
        self.service.stop();
        if let SwtpmTransport::Tcp { port } = self.transport {
            // Give the kernel a moment to release the ports.
            wait_until(Duration::from_secs(5), || {
                !ports::is_listening(port) && !ports::is_listening(port + 1)
            });
        }
        self.service = start(self.state.path(), &self.transport)?;
        Ok(())
    }

    pub fn transport(&self) -> &SwtpmTransport {
        &self.transport
    }

    /// The data port, for TCP mode.
    pub fn port(&self) -> Option<u16> {
        match self.transport {
            SwtpmTransport::Tcp { port } => Some(port),
            SwtpmTransport::Unix { .. } => None,
        }
    }

    /// The control port, for TCP mode.
    pub fn ctrl_port(&self) -> Option<u16> {
        self.port().map(|p| p + 1)
    }

    /// The tpm2-tss TCTI string, e.g. `swtpm:host=127.0.0.1,port=2321`.
    pub fn tcti(&self) -> Option<String> {
        self.port()
            .map(|port| format!("swtpm:host=127.0.0.1,port={port}"))
    }

    /// The control socket, for unix mode.
    pub fn socket(&self) -> Option<&Path> {
        match &self.transport {
            SwtpmTransport::Unix { socket } => Some(socket),
            SwtpmTransport::Tcp { .. } => None,
        }
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    pub fn log(&self) -> String {
        self.service.log_text()
    }
}

fn start(state: &Path, transport: &SwtpmTransport) -> Result<Service> {
    let mut cmd = Command::new(which("swtpm")?);
    cmd.args(["socket", "--tpm2"])
        .arg("--tpmstate")
        .arg(format!("dir={}", state.display()));
    match transport {
        SwtpmTransport::Tcp { port } => {
            // Nobody sends CMD_INIT / TPM2_Startup on the TCP ports: swtpm does both.
            cmd.args(["--flags", "not-need-init,startup-clear"])
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1));
        }
        SwtpmTransport::Unix { socket } => {
            // QEMU initialises the TPM itself over the control channel, and the
            // firmware sends TPM2_Startup.
            cmd.arg("--ctrl")
                .arg(format!("type=unixio,path={}", socket.display()));
        }
    }
    let mut service = Service::spawn("swtpm", cmd, &state.join("swtpm.log"))?;
    let ready = wait_until(Duration::from_secs(10), || match transport {
        SwtpmTransport::Tcp { port } => ports::is_listening(*port) && ports::is_listening(port + 1),
        SwtpmTransport::Unix { socket } => socket.exists(),
    });
    if !ready || !service.is_running() {
        return Err(RigError::NotReady {
            service: "swtpm".into(),
            detail: service.log_text(),
        });
    }
    Ok(service)
}
