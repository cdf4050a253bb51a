//! Every byte install, update, firstboot and reset write goes through [`Disk`], so a
//! test can swap in [`CrashDisk`], which "loses power" after the N-th write.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A block device or disk image.
pub trait Disk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    fn size(&self) -> u64;
    /// Makes everything written so far durable.
    fn flush(&mut self) -> io::Result<()>;
}

/// A disk image file or block device.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    size: u64,
}

impl FileDisk {
    pub fn open(path: &Path) -> io::Result<FileDisk> {
        let mut file = File::options().read(true).write(true).open(path)?;
        // Works for block devices too, where metadata().len() is 0.
        let size = file.seek(SeekFrom::End(0))?;
        Ok(FileDisk { file, size })
    }
}

impl Disk for FileDisk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if offset + data.len() as u64 > self.size {
            return Err(io::Error::other("write past the end of the disk"));
        }
        self.file.write_all_at(data, offset)
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// A disk in memory.
#[derive(Debug, Clone)]
pub struct MemDisk(pub Vec<u8>);

impl Disk for MemDisk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset as usize + buf.len();
        let src = self
            .0
            .get(offset as usize..end)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset as usize + data.len();
        let dst = self
            .0
            .get_mut(offset as usize..end)
            .ok_or_else(|| io::Error::other("write past the end of the disk"))?;
        dst.copy_from_slice(data);
        Ok(())
    }
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A disk that loses power: writes after the first `budget` are dropped and fail.
/// A write is all-or-nothing (a sector-atomic model), and nothing is reordered.
#[derive(Debug)]
pub struct CrashDisk<D> {
    pub inner: D,
    pub budget: usize,
    pub writes: usize,
    pub crashed: bool,
}

pub const POWER_LOST: &str = "power lost (injected)";

impl<D: Disk> CrashDisk<D> {
    pub fn new(inner: D, budget: usize) -> CrashDisk<D> {
        CrashDisk {
            inner,
            budget,
            writes: 0,
            crashed: false,
        }
    }
}

impl<D: Disk> Disk for CrashDisk<D> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if self.crashed || self.writes >= self.budget {
            self.crashed = true;
            return Err(io::Error::other(POWER_LOST));
        }
        self.writes += 1;
        self.inner.write_at(offset, data)
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.crashed {
            return Err(io::Error::other(POWER_LOST));
        }
        self.inner.flush()
    }
}

/// Counts writes, for sizing a crash sweep.
#[derive(Debug)]
pub struct CountingDisk<D> {
    pub inner: D,
    pub writes: usize,
}

impl<D: Disk> Disk for CountingDisk<D> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.writes += 1;
        self.inner.write_at(offset, data)
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A disk seen read-only: writes are accepted and dropped. For code paths that only
/// look (listing a FAT directory mounts it, and fatfs marks the volume dirty).
pub struct ReadOnly<'a>(pub &'a dyn Disk);

impl std::fmt::Debug for ReadOnly<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadOnly")
    }
}

impl Disk for ReadOnly<'_> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_at(offset, buf)
    }
    fn write_at(&mut self, _offset: u64, _data: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A byte range of a disk as a seekable stream (a partition, for a file system
/// library). Writes go straight to the disk.
pub struct Region<'a> {
    disk: &'a mut dyn Disk,
    start: u64,
    len: u64,
    pos: u64,
}

impl std::fmt::Debug for Region<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Region({}+{})", self.start, self.len)
    }
}

impl<'a> Region<'a> {
    pub fn new(disk: &'a mut dyn Disk, start: u64, len: u64) -> Region<'a> {
        Region {
            disk,
            start,
            len,
            pos: 0,
        }
    }
}

impl Read for Region<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        self.disk.read_at(self.start + self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Region<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "end of partition"));
        }
        self.disk.write_at(self.start + self.pos, &buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Region<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.len as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if new < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before start",
            ));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}

/// Reads the GPT of a disk, falling back to the backup table.
pub fn read_gpt(disk: &dyn Disk) -> Result<crate::gpt::Gpt, crate::gpt::GptError> {
    crate::gpt::Gpt::decode_with_backup(|off, buf| disk.read_at(off, buf), disk.size())
}

/// Writes a GPT so that a crash at any point leaves one valid table: the backup
/// (entries and header, one write) first, then the primary (header and entries, one
/// write). A torn primary fails its CRC and readers use the already-new backup; a
/// torn backup leaves the old primary in charge.
pub fn write_gpt(disk: &mut dyn Disk, gpt: &crate::gpt::Gpt) -> io::Result<()> {
    let w = gpt.encode().map_err(|e| io::Error::other(e.to_string()))?;
    // encode(): [PMBR, primary header, primary entries, backup entries, backup header]
    let join = |a: &(u64, Vec<u8>), b: &(u64, Vec<u8>)| {
        let mut v = a.1.clone();
        v.extend_from_slice(&b.1);
        (a.0, v)
    };
    let backup = join(&w[3], &w[4]);
    let primary = join(&w[1], &w[2]);
    disk.write_at(backup.0, &backup.1)?;
    disk.write_at(primary.0, &primary.1)?;
    // Keep an existing protective MBR (it may carry boot code another system needs).
    let mut pmbr = vec![0u8; 512];
    disk.read_at(0, &mut pmbr)?;
    let protective = pmbr[510..512] == [0x55, 0xaa] && pmbr[446 + 4] == 0xee;
    if !protective {
        disk.write_at(0, &w[0].1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_disk_drops_writes_after_its_budget() {
        let mut d = CrashDisk::new(MemDisk(vec![0; 16]), 2);
        d.write_at(0, &[1]).unwrap();
        d.write_at(1, &[2]).unwrap();
        assert!(d.write_at(2, &[3]).is_err());
        assert!(d.write_at(3, &[4]).is_err());
        assert_eq!(&d.inner.0[..4], &[1, 2, 0, 0]);
    }

    #[test]
    fn region_reads_and_writes_inside_its_bounds() {
        let mut m = MemDisk(vec![0; 32]);
        {
            let mut r = Region::new(&mut m, 8, 8);
            r.write_all(&[9; 8]).unwrap();
            assert!(r.write(&[1]).is_err());
            r.seek(SeekFrom::Start(0)).unwrap();
            let mut b = [0; 8];
            r.read_exact(&mut b).unwrap();
            assert_eq!(b, [9; 8]);
        }
        assert_eq!(m.0[7], 0);
        assert_eq!(m.0[16], 0);
    }
}
