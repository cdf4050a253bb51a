//! The `newc` cpio format the kernel unpacks as an initramfs.

use std::collections::BTreeSet;

/// An in-memory newc archive. Parent directories are added on demand, so entries can
/// be given in any order.
#[derive(Debug, Default)]
pub struct Cpio {
    out: Vec<u8>,
    dirs: BTreeSet<String>,
    ino: u32,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

impl Cpio {
    pub fn new() -> Cpio {
        Cpio::default()
    }

    pub fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        if path.is_empty() || self.dirs.contains(path) {
            return;
        }
        self.parents(path);
        self.dirs.insert(path.to_owned());
        self.entry(path, S_IFDIR | 0o755, 0, &[]);
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        let path = path.trim_matches('/');
        self.parents(path);
        self.entry(path, S_IFREG | (mode & 0o7777), 0, data);
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        let path = path.trim_matches('/');
        self.parents(path);
        self.entry(path, S_IFLNK | 0o777, 0, target.as_bytes());
    }

    /// A character device node; lets the kernel open `/dev/console` before init
    /// mounts devtmpfs.
    pub fn char_dev(&mut self, path: &str, major: u32, minor: u32) {
        let path = path.trim_matches('/');
        self.parents(path);
        self.entry(path, S_IFCHR | 0o600, (major << 16) | minor, &[]);
    }

    /// Finishes the archive with the trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, 0, &[]);
        self.out
    }

    fn parents(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: u32, data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            if mode & 0o170000 == S_IFDIR { 2 } else { 1 },
            0, // mtime: fixed, so the archive is reproducible
            data.len() as u32,
            0,
            0,
            rdev >> 16,
            rdev & 0xffff,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// The archive must be readable by GNU cpio, the reference implementation.
    #[test]
    fn gnu_cpio_lists_what_we_wrote() {
        let Ok(cpio_bin) = crate::which("cpio") else {
            panic!("cpio is not installed (cargo xtask deps)");
        };
        let mut c = Cpio::new();
        c.file("bin/hello", 0o755, b"#!/bin/sh\necho hi\n");
        c.symlink("sbin/init", "/bin/hello");
        c.char_dev("dev/console", 5, 1);
        let bytes = c.finish();
        let mut child = Command::new(cpio_bin)
            .args(["-t", "-v", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let listing = String::from_utf8(out.stdout).unwrap();
        for needle in [
            "bin\n",
            "bin/hello\n",
            "sbin/init -> /bin/hello",
            "dev/console",
        ] {
            assert!(
                listing.contains(needle),
                "missing {needle:?} in:\n{listing}"
            );
        }
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("crw") && l.contains("5,")),
            "{listing}"
        );
    }
}
