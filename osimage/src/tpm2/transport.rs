//! Getting command bytes to a TPM and response bytes back: the kernel's resource
//! manager (`/dev/tpmrm0`), or swtpm's TCP data port.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::Tpm2Error;

/// The largest response any command here can produce (TPM_MAX_COMMAND_SIZE is 4096
/// on PC-client TPMs).
const MAX_RESPONSE: usize = 8192;

pub trait Transport: Send {
    /// Sends one command and returns the whole response.
    fn transact(&mut self, command: &[u8]) -> io::Result<Vec<u8>>;
}

/// Where the TPM is, in the TCTI spelling systemd and tpm2-tools accept:
/// `device:/dev/tpmrm0`, a bare path, or `swtpm:host=127.0.0.1,port=2321`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TctiSpec {
    Device(PathBuf),
    Swtpm { host: String, port: u16 },
}

impl Default for TctiSpec {
    fn default() -> Self {
        TctiSpec::Device(PathBuf::from("/dev/tpmrm0"))
    }
}

impl fmt::Display for TctiSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TctiSpec::Device(p) => write!(f, "device:{}", p.display()),
            TctiSpec::Swtpm { host, port } => write!(f, "swtpm:host={host},port={port}"),
        }
    }
}

impl FromStr for TctiSpec {
    type Err = Tpm2Error;

    fn from_str(s: &str) -> Result<TctiSpec, Tpm2Error> {
        let bad = |why: &str| Tpm2Error::Tcti(format!("{s:?}: {why}"));
        if let Some(path) = s.strip_prefix("device:") {
            return Ok(TctiSpec::Device(PathBuf::from(if path.is_empty() {
                "/dev/tpmrm0"
            } else {
                path
            })));
        }
        if s.starts_with('/') {
            return Ok(TctiSpec::Device(PathBuf::from(s)));
        }
        let Some(conf) = s.strip_prefix("swtpm") else {
            return Err(bad("expected device:PATH or swtpm:host=H,port=N"));
        };
        let conf = conf.strip_prefix(':').unwrap_or(conf);
        let (mut host, mut port) = ("127.0.0.1".to_string(), 2321u16);
        for pair in conf.split(',').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("host", h)) => host = h.to_string(),
                Some(("port", p)) => port = p.parse().map_err(|_| bad("port is not a number"))?,
                _ => return Err(bad(&format!("unknown swtpm option {pair:?}"))),
            }
        }
        Ok(TctiSpec::Swtpm { host, port })
    }
}

impl TctiSpec {
    pub fn open(&self) -> Result<Box<dyn Transport>, Tpm2Error> {
        match self {
            TctiSpec::Device(path) => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::NotFound => Tpm2Error::NoTpm(format!(
                            "{} does not exist (no TPM, or its driver is not loaded)",
                            path.display()
                        )),
                        _ => Tpm2Error::NoTpm(format!("{}: {e}", path.display())),
                    })?;
                Ok(Box::new(Device(file)))
            }
            TctiSpec::Swtpm { host, port } => {
                let stream = TcpStream::connect((host.as_str(), *port))
                    .map_err(|e| Tpm2Error::NoTpm(format!("swtpm at {host}:{port}: {e}")))?;
                stream.set_read_timeout(Some(Duration::from_secs(60)))?;
                stream.set_nodelay(true)?;
                Ok(Box::new(Swtpm(stream)))
            }
        }
    }
}

/// A TPM character device: one write is one command, one read is its response.
struct Device(File);

impl Transport for Device {
    fn transact(&mut self, command: &[u8]) -> io::Result<Vec<u8>> {
        self.0.write_all(command)?;
        let mut buf = vec![0u8; MAX_RESPONSE];
        let n = self.0.read(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }
}

/// swtpm's data port carries raw TPM commands and responses, framed only by the size
/// field of their headers.
struct Swtpm(TcpStream);

impl Transport for Swtpm {
    fn transact(&mut self, command: &[u8]) -> io::Result<Vec<u8>> {
        self.0.write_all(command)?;
        let mut header = [0u8; 10];
        self.0.read_exact(&mut header)?;
        let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
        if !(10..=MAX_RESPONSE).contains(&size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("response size {size} out of range"),
            ));
        }
        let mut response = header.to_vec();
        response.resize(size, 0);
        self.0.read_exact(&mut response[10..])?;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcti_strings_parse_like_tpm2_tss() {
        assert_eq!(
            "swtpm:host=127.0.0.1,port=4000".parse::<TctiSpec>().ok(),
            Some(TctiSpec::Swtpm {
                host: "127.0.0.1".into(),
                port: 4000
            })
        );
        assert_eq!(
            "device:/dev/tpm0".parse::<TctiSpec>().ok(),
            Some(TctiSpec::Device("/dev/tpm0".into()))
        );
        assert_eq!(
            "/dev/tpmrm0".parse::<TctiSpec>().ok(),
            Some(TctiSpec::default())
        );
        assert!("mssim:port=1".parse::<TctiSpec>().is_err());
        assert!("swtpm:port=x".parse::<TctiSpec>().is_err());
        assert!("swtpm:bogus=1".parse::<TctiSpec>().is_err());
    }
}
