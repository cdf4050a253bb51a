//! Where updates come from: an HTTP(S) base URL or a directory. HTTP transfers resume
//! with `Range` after a dropped connection.

use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{what}: {why}")]
    Transport { what: String, why: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Sink(io::Error),
}

#[derive(Debug, Clone)]
pub enum Source {
    Http { base: String, retries: u32 },
    Dir(PathBuf),
}

impl Source {
    /// `http://…`/`https://…` or a directory path.
    pub fn parse(s: &str) -> Source {
        if s.starts_with("http://") || s.starts_with("https://") {
            Source::Http {
                base: s.trim_end_matches('/').to_owned(),
                retries: 5,
            }
        } else {
            Source::Dir(PathBuf::from(s))
        }
    }

    fn agent() -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(30))
            .build()
    }

    /// Whether the file is there (HTTP HEAD, or the directory entry).
    pub fn exists(&self, name: &str) -> Result<bool, SourceError> {
        match self {
            Source::Dir(dir) => Ok(dir.join(name).is_file()),
            Source::Http { base, .. } => {
                let url = format!("{base}/{name}");
                match Source::agent().head(&url).call() {
                    Ok(_) => Ok(true),
                    Err(ureq::Error::Status(404, _)) => Ok(false),
                    Err(ureq::Error::Status(status, _)) => Err(SourceError::Status { url, status }),
                    Err(e) => Err(SourceError::Transport {
                        what: url,
                        why: e.to_string(),
                    }),
                }
            }
        }
    }

    /// A whole (small) file.
    pub fn get(&self, name: &str) -> Result<Vec<u8>, SourceError> {
        let mut v = Vec::new();
        self.stream(name, &mut |chunk| {
            v.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(v)
    }

    /// Streams a file into `sink`, resuming after transport errors. Returns its size.
    pub fn stream(
        &self,
        name: &str,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<u64, SourceError> {
        match self {
            Source::Dir(dir) => {
                let path = dir.join(name);
                let what = || path.display().to_string();
                let mut f = std::fs::File::open(&path).map_err(|source| SourceError::Io {
                    what: what(),
                    source,
                })?;
                let mut buf = vec![0u8; 1 << 20];
                let mut total = 0u64;
                loop {
                    let n = f.read(&mut buf).map_err(|source| SourceError::Io {
                        what: what(),
                        source,
                    })?;
                    if n == 0 {
                        return Ok(total);
                    }
                    sink(&buf[..n]).map_err(SourceError::Sink)?;
                    total += n as u64;
                }
            }
            Source::Http { base, retries } => {
                let url = format!("{base}/{name}");
                let agent = Source::agent();
                let mut done = 0u64;
                let mut attempt = 0;
                loop {
                    let mut req = agent.get(&url);
                    if done > 0 {
                        req = req.set("Range", &format!("bytes={done}-"));
                    }
                    let result = match req.call() {
                        Ok(resp) => {
                            if done > 0 && resp.status() != 206 {
                                return Err(SourceError::Transport {
                                    what: url,
                                    why: "server ignored the Range request; cannot resume".into(),
                                });
                            }
                            let mut r = resp.into_reader();
                            let mut buf = vec![0u8; 1 << 20];
                            loop {
                                match r.read(&mut buf) {
                                    Ok(0) => break Ok(()),
                                    Ok(n) => {
                                        sink(&buf[..n]).map_err(SourceError::Sink)?;
                                        done += n as u64;
                                    }
                                    Err(e) => break Err(e.to_string()),
                                }
                            }
                        }
                        Err(ureq::Error::Status(status, _)) => {
                            return Err(SourceError::Status { url, status });
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    match result {
                        Ok(()) => return Ok(done),
                        Err(why) if attempt < *retries => {
                            attempt += 1;
                            tracing::warn!("{url}: {why}; resuming at byte {done} (try {attempt})");
                            std::thread::sleep(Duration::from_millis(200 * attempt as u64));
                        }
                        Err(why) => return Err(SourceError::Transport { what: url, why }),
                    }
                }
            }
        }
    }
}
