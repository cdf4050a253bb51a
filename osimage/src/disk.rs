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
    /// Starts writing a range back to the device without waiting for it, so a long
    /// stream of writes reaches the device while more are produced. Only a hint.
    fn start_writeback(&self, _offset: u64, _len: u64) {}
}

/// A disk image file or block device.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    size: u64,
    /// The same file opened with O_DIRECT, for large aligned writes: a partition
    /// streamed through the page cache is written twice over (copy, then writeback),
    /// and on small machines the dirty-page throttling, not the device, sets the pace.
    /// `None` where the filesystem refuses O_DIRECT (tmpfs).
    direct: Option<File>,
    /// Page-aligned bounce buffer for direct writes.
    bounce: Vec<u8>,
}

/// O_DIRECT wants buffers, offsets and lengths aligned to the logical block size;
/// 4096 covers 512-byte and 4K-native devices alike.
const DIRECT_ALIGN: usize = 4096;
/// Below this the page cache is cheaper than a synchronous device write.
const DIRECT_MIN: usize = 1 << 20;

impl FileDisk {
    /// Opened for reading only: writes fail with EBADF. For code that only looks,
    /// such as the initrd's signature check: closing a block device opened for
    /// writing makes udev re-read its partition table, and the partitions'
    /// devices vanish and come back under whoever is setting them up.
    pub fn open_read_only(path: &Path) -> io::Result<FileDisk> {
        let mut file = File::options().read(true).open(path)?;
        let size = file.seek(SeekFrom::End(0))?;
        Ok(FileDisk {
            file,
            size,
            direct: None,
            bounce: Vec::new(),
        })
    }

    pub fn open(path: &Path) -> io::Result<FileDisk> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = File::options().read(true).write(true).open(path)?;
        // Works for block devices too, where metadata().len() is 0.
        let size = file.seek(SeekFrom::End(0))?;
        let direct = File::options()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok();
        Ok(FileDisk {
            file,
            size,
            direct,
            bounce: Vec::new(),
        })
    }

    /// Writes through O_DIRECT when the write is large and aligned; false when the
    /// caller should use the page cache instead.
    fn write_direct(&mut self, offset: u64, data: &[u8]) -> io::Result<bool> {
        let Some(direct) = &self.direct else {
            return Ok(false);
        };
        if data.len() < DIRECT_MIN
            || !data.len().is_multiple_of(DIRECT_ALIGN)
            || !offset.is_multiple_of(DIRECT_ALIGN as u64)
        {
            return Ok(false);
        }
        if self.bounce.len() < data.len() + DIRECT_ALIGN {
            self.bounce.resize(data.len() + DIRECT_ALIGN, 0);
        }
        let pad = self.bounce.as_ptr().align_offset(DIRECT_ALIGN);
        if pad >= DIRECT_ALIGN {
            return Ok(false);
        }
        let aligned = &mut self.bounce[pad..pad + data.len()];
        aligned.copy_from_slice(data);
        match direct.write_all_at(aligned, offset) {
            Ok(()) => Ok(true),
            // Some filesystems accept the flag at open and refuse the write.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!("O_DIRECT refused ({e}); writing through the page cache");
                self.direct = None;
                Ok(false)
            }
            Err(e) => Err(e),
        }
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
        if self.write_direct(offset, data)? {
            return Ok(());
        }
        self.file.write_all_at(data, offset)
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
    fn start_writeback(&self, offset: u64, len: u64) {
        start_writeback(&self.file, offset, len);
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to the device
/// now, so that a later fsync has less left to wait for. Failure only loses the hint.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads its integer arguments; the descriptor is
    // borrowed from `file` and open for the whole call.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
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

    /// Large aligned writes take the O_DIRECT path and small or unaligned ones the
    /// page cache; both must land where asked, and mixing them must stay coherent.
    #[test]
    fn direct_and_buffered_writes_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        File::create(&path).unwrap().set_len(8 << 20).unwrap();
        let mut d = FileDisk::open(&path).unwrap();
        let big: Vec<u8> = (0..2 << 20).map(|i| (i * 7 % 251) as u8).collect();
        d.write_at(1 << 20, &big).unwrap();
        d.write_at((1 << 20) + 4096 + 3, b"unaligned").unwrap();
        d.write_at(4 << 20, &big[..(1 << 20) + 512]).unwrap();
        d.flush().unwrap();
        let mut back = vec![0u8; big.len()];
        d.read_at(1 << 20, &mut back).unwrap();
        assert_eq!(&back[4099..4108], b"unaligned");
        back[4099..4108].copy_from_slice(&big[4099..4108]);
        assert!(back == big);
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk[4 << 20..(5 << 20) + 512] == big[..(1 << 20) + 512]);
        assert!(on_disk[..1 << 20].iter().all(|&b| b == 0));
        assert!(d.write_at((8 << 20) - 4096, &big[..1 << 20]).is_err());
    }

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
