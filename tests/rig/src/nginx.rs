//! A real HTTP server: nginx serving one directory on a free loopback port, from a
//! generated config. No system config, log or temp path is touched.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{Service, wait_until};
use crate::{Result, RigError, io_err, ports, which};

/// Misbehaviour a test can ask nginx for, each under its own URL prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Every request under `/<prefix>/` answers with this HTTP status.
    Status { prefix: String, code: u16 },
    /// Requests under `/<prefix>/` close the connection without any response
    /// (nginx's 444).
    Drop { prefix: String },
    /// Files under `/<prefix>/` are the served directory's files, sent at
    /// `bytes_per_sec` after the first `after` bytes, so a test can stop or restart
    /// the server mid-transfer and see a truncated body.
    Slow {
        prefix: String,
        bytes_per_sec: u64,
        after: u64,
    },
}

/// A running nginx. Stopped on drop.
#[derive(Debug)]
pub struct Nginx {
    service: Option<Service>,
    port: u16,
    root: PathBuf,
    faults: Vec<Fault>,
    prefix: TempDir,
}

impl Nginx {
    /// Serves `root` with byte ranges enabled and no faults.
    pub fn serve(root: &Path) -> Result<Nginx> {
        Nginx::serve_with_faults(root, Vec::new())
    }

    pub fn serve_with_faults(root: &Path, faults: Vec<Fault>) -> Result<Nginx> {
        let root = root
            .canonicalize()
            .map_err(io_err(format!("nginx root {}", root.display())))?;
        let prefix = tempfile::Builder::new()
            .prefix("tessera-nginx-")
            .tempdir()
            .map_err(io_err("nginx prefix"))?;
        let mut nginx = Nginx {
            service: None,
            port: 0,
            root,
            faults,
            prefix,
        };
        let mut last = String::new();
        for _ in 0..5 {
            nginx.port = ports::free_port().map_err(io_err("free port"))?;
            match nginx.start() {
                Ok(()) => return Ok(nginx),
                Err(e) => last = e.to_string(),
            }
        }
        Err(RigError::NotReady {
            service: "nginx".into(),
            detail: last,
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The URL of `path` (relative to the served root).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url(), path.trim_start_matches('/'))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Kills the server at once, cutting off any transfer in flight.
    pub fn stop(&mut self) {
        if let Some(mut service) = self.service.take() {
            // SIGKILL, not a graceful quit: this is the "server died mid-way" fault.
            if let Some(pid) = service.pid() {
                // SAFETY: kill(2) on our own unreaped child.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
            service.stop();
        }
    }

    /// Starts the server again on the same port and config.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        wait_until(Duration::from_secs(5), || !ports::is_listening(self.port));
        self.start()
    }

    pub fn is_running(&mut self) -> bool {
        self.service.as_mut().is_some_and(Service::is_running)
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.path().join("error.log")).unwrap_or_default()
    }

    /// The access log so far (one line per request, with status and bytes sent).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.prefix.path().join("access.log")).unwrap_or_default()
    }

    fn start(&mut self) -> Result<()> {
        let conf = render_config(self.prefix.path(), &self.root, self.port, &self.faults);
        let conf_path = self.prefix.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(io_err("write nginx.conf"))?;
        let mut cmd = Command::new(which("nginx")?);
        cmd.arg("-p")
            .arg(self.prefix.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(self.prefix.path().join("error.log"));
        let mut service = Service::spawn("nginx", cmd, &self.prefix.path().join("stdout.log"))?;
        let port = self.port;
        let up = wait_until(Duration::from_secs(10), || {
            ports::is_listening(port) || !service.is_running()
        });
        if !up || !service.is_running() {
            return Err(RigError::NotReady {
                service: "nginx".into(),
                detail: format!("{}{}", service.log_text(), self.error_log()),
            });
        }
        self.service = Some(service);
        Ok(())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The whole nginx.conf: one foreground process, everything under `prefix`.
pub fn render_config(prefix: &Path, root: &Path, port: u16, faults: &[Fault]) -> String {
    let p = prefix.display();
    let mut locations = String::new();
    for fault in faults {
        match fault {
            Fault::Status { prefix, code } => {
                let _ = writeln!(
                    locations,
                    "        location ^~ /{prefix}/ {{ return {code}; }}"
                );
            }
            Fault::Drop { prefix } => {
                let _ = writeln!(
                    locations,
                    "        location ^~ /{prefix}/ {{ return 444; }}"
                );
            }
            Fault::Slow {
                prefix,
                bytes_per_sec,
                after,
            } => {
                let _ = writeln!(
                    locations,
                    "        location ^~ /{prefix}/ {{ alias \"{}/\"; limit_rate {bytes_per_sec}; limit_rate_after {after}; }}",
                    root.display()
                );
            }
        }
    }
    format!(
        r#"# Generated by tessera-rig for one test.
daemon off;
master_process off;
worker_processes 1;
pid "{p}/nginx.pid";
error_log "{p}/error.log" info;
events {{ worker_connections 64; }}
http {{
    access_log "{p}/access.log";
    client_body_temp_path "{p}/body";
    proxy_temp_path "{p}/proxy";
    fastcgi_temp_path "{p}/fastcgi";
    uwsgi_temp_path "{p}/uwsgi";
    scgi_temp_path "{p}/scgi";
    default_type application/octet-stream;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        root "{root}";
        autoindex on;
{locations}        location / {{ }}
    }}
}}
"#,
        root = root.display(),
    )
}
