//! [`BlockDevice`] for a real disk: telling the kernel about a new partition table
//! (BLKPG, partition by partition), and formatting partitions, through
//! device-mapper for encrypted ones.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::format::{self, BlockDevice, FormatError, FormatJob};
use crate::gpt::Gpt;
use crate::luks::{self, Luks2};

/// `_IO(0x12, 97)` and `_IO(0x12, 105)` from linux/fs.h; the libc crate lacks them.
const BLKFLSBUF: libc::c_ulong = 0x1261;
const BLKPG: libc::c_ulong = 0x1269;
const BLKPG_ADD_PARTITION: libc::c_int = 1;
const BLKPG_DEL_PARTITION: libc::c_int = 2;

/// How long the kernel (and udev, for /dev/mapper) get to make device nodes.
const NODE_WAIT: Duration = Duration::from_secs(10);
/// The write size of the integrity tag initialization.
const WIPE_CHUNK: usize = 4 << 20;

/// linux/blkpg.h
#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

/// linux/blkpg.h; the names are ignored by the kernel.
#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [libc::c_char; 64],
    volname: [libc::c_char; 64],
}

/// A partition as the kernel sees it: entry number, start and length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelPartition {
    pub number: u32,
    pub start: u64,
    pub length: u64,
}

/// The partitions of `gpt` in the kernel's terms.
pub fn table_partitions(gpt: &Gpt) -> Vec<KernelPartition> {
    let ss = gpt.sector_size as u64;
    gpt.partitions
        .iter()
        .enumerate()
        .map(|(i, p)| KernelPartition {
            number: gpt.number(i),
            start: p.first_lba * ss,
            length: p.sectors() * ss,
        })
        .collect()
}

/// What BLKPG must change for the kernel's partitions to match the table: the
/// numbers to delete (gone, or moved), then the partitions to add. A partition the
/// table keeps as it is stays untouched, so one in use (the booted usr) is no
/// obstacle.
pub fn partition_changes(
    kernel: &[KernelPartition],
    table: &[KernelPartition],
) -> (Vec<u32>, Vec<KernelPartition>) {
    let delete = kernel
        .iter()
        .filter(|k| !table.contains(k))
        .map(|k| k.number)
        .collect();
    let add = table
        .iter()
        .filter(|t| !kernel.contains(t))
        .copied()
        .collect();
    (delete, add)
}

/// The kernel's name for partition `n` of `disk`: `sda3`, but `nvme0n1p3` where
/// the disk's name ends in a digit.
pub fn partition_name(disk: &str, n: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{n}")
    } else {
        format!("{disk}{n}")
    }
}

/// Waits for udev to handle every event so far; call it once the disk is closed.
/// While [`SystemBlockDevice`] holds the disk's lock udev postpones the disk's
/// events (as it does for systemd-repart), and closing a disk opened for writing
/// makes it re-read the table. Without waiting, firstboot can end while udev still
/// works through the removal of the partitions a factory reset re-created: systemd
/// then starts systemd-cryptsetup@root on the device unit it still believes in, and
/// stops it for good when the removal arrives (seen as a boot that waited 90 s for
/// /dev/gpt-auto-root).
pub fn settle_udev() {
    match std::process::Command::new("udevadm")
        .args(["settle", "--timeout=60"])
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => tracing::warn!("udevadm settle: {s}; going on"),
        Err(e) => tracing::debug!("udevadm settle: {e} (no udev here)"),
    }
}

/// Polls `found` for up to [`NODE_WAIT`].
fn wait_for<T>(mut found: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + NODE_WAIT;
    loop {
        if let Some(t) = found() {
            return Some(t);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Drops a block device's cached pages. The disk and each partition have a page
/// cache of their own: what firstboot wrote through the disk is not in a
/// partition's, where a probe earlier in the boot may have left the old contents of
/// the same sectors (and the other way round after mkfs).
fn drop_cache(file: &File) -> std::io::Result<()> {
    // SAFETY: BLKFLSBUF takes no argument.
    if unsafe { libc::ioctl(file.as_raw_fd(), BLKFLSBUF, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn is_block_device(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

/// A whole disk, held with an exclusive BSD lock for as long as firstboot works on
/// it: udev then leaves the disk and its partitions alone until firstboot is done
/// (systemd's block device locking), so nothing probes or acts on a half-made
/// partition.
#[derive(Debug)]
pub struct SystemBlockDevice {
    file: File,
    /// The kernel's name for the disk (`sda`).
    name: String,
    /// /sys/class/block/<name>, resolved.
    sys: PathBuf,
    dev: PathBuf,
}

impl SystemBlockDevice {
    /// `path` as a block device, or `None` where it is a regular file (an image).
    pub fn open(path: &Path) -> Result<Option<SystemBlockDevice>, FormatError> {
        let io = |what: &str, e| FormatError::io(format!("{}: {what}", path.display()), e);
        let meta = std::fs::metadata(path).map_err(|e| io("stat", e))?;
        if !meta.file_type().is_block_device() {
            return Ok(None);
        }
        let real = std::fs::canonicalize(path).map_err(|e| io("resolve", e))?;
        let name = real
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sys = std::fs::canonicalize(Path::new("/sys/class/block").join(&name))
            .map_err(|e| io("find it in /sys/class/block", e))?;
        if sys.join("partition").exists() {
            return Err(FormatError::Kernel {
                what: format!(
                    "{} is a partition; firstboot takes the whole disk",
                    path.display()
                ),
            });
        }
        let file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io("open", e))?;
        // SAFETY: flock on a descriptor we own for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io("lock", std::io::Error::last_os_error()));
        }
        Ok(Some(SystemBlockDevice {
            file,
            name,
            sys,
            dev: PathBuf::from("/dev"),
        }))
    }

    /// The partitions the kernel has now, from sysfs (in 512-byte units there,
    /// whatever the disk's sector size).
    fn kernel_partitions(&self) -> Result<Vec<KernelPartition>, FormatError> {
        let read = |p: PathBuf| -> Result<u64, FormatError> {
            let s = std::fs::read_to_string(&p)
                .map_err(|e| FormatError::io(p.display().to_string(), e))?;
            s.trim().parse().map_err(|_| FormatError::Kernel {
                what: format!("{}: `{}` is not a number", p.display(), s.trim()),
            })
        };
        let entries = std::fs::read_dir(&self.sys)
            .map_err(|e| FormatError::io(self.sys.display().to_string(), e))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            if !dir.join("partition").exists() {
                continue;
            }
            out.push(KernelPartition {
                number: read(dir.join("partition"))? as u32,
                start: read(dir.join("start"))? * 512,
                length: read(dir.join("size"))? * 512,
            });
        }
        Ok(out)
    }

    fn blkpg(&self, op: libc::c_int, p: KernelPartition) -> std::io::Result<()> {
        let mut part = BlkpgPartition {
            start: p.start as libc::c_longlong,
            length: p.length as libc::c_longlong,
            pno: p.number as libc::c_int,
            devname: [0; 64],
            volname: [0; 64],
        };
        let mut arg = BlkpgIoctlArg {
            op,
            flags: 0,
            datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
            data: (&mut part as *mut BlkpgPartition).cast(),
        };
        // SAFETY: BLKPG reads a blkpg_ioctl_arg whose data points at a
        // blkpg_partition of datalen bytes; both live on this stack frame for the call.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), BLKPG, &mut arg) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn node(&self, number: u32) -> PathBuf {
        self.dev.join(partition_name(&self.name, number))
    }
}

impl BlockDevice for SystemBlockDevice {
    fn sync_partitions(&mut self, gpt: &Gpt) -> Result<(), FormatError> {
        let want = table_partitions(gpt);
        drop_cache(&self.file)
            .map_err(|e| FormatError::io(format!("/dev/{}: dropping its cache", self.name), e))?;
        // Never BLKRRPART: it drops and re-adds every partition, so the devices of the
        // ones in use (the usr partition systemd-veritysetup@usr is bound to) vanish
        // for a moment and their units fail. BLKPG changes only what differs.
        let (delete, add) = partition_changes(&self.kernel_partitions()?, &want);
        for n in delete {
            let p = KernelPartition {
                number: n,
                start: 0,
                length: 0,
            };
            self.blkpg(BLKPG_DEL_PARTITION, p).map_err(|e| {
                FormatError::io(format!("removing partition {n} from the kernel"), e)
            })?;
        }
        for p in add {
            self.blkpg(BLKPG_ADD_PARTITION, p).map_err(|e| {
                FormatError::io(format!("adding partition {} to the kernel", p.number), e)
            })?;
        }
        let missing = || -> Vec<PathBuf> {
            want.iter()
                .map(|p| self.node(p.number))
                .filter(|n| !is_block_device(n))
                .collect()
        };
        if wait_for(|| missing().is_empty().then_some(())).is_none() {
            let names: Vec<String> = missing().iter().map(|n| n.display().to_string()).collect();
            return Err(FormatError::Kernel {
                what: format!(
                    "{} did not appear within {} s",
                    names.join(", "),
                    NODE_WAIT.as_secs()
                ),
            });
        }
        // A relabel changes no geometry, so the kernel sends no event: ask udev to
        // probe every partition again, or /dev/disk/by-partlabel keeps the old names.
        for p in &want {
            let name = partition_name(&self.name, p.number);
            let uevent = Path::new("/sys/class/block").join(&name).join("uevent");
            if let Err(e) = std::fs::write(&uevent, "change") {
                tracing::debug!("{}: {e}", uevent.display());
            }
        }
        Ok(())
    }

    fn format(&mut self, job: &FormatJob<'_>) -> Result<(), FormatError> {
        let node = self.node(job.number);
        File::open(&node)
            .and_then(|f| drop_cache(&f))
            .map_err(|e| FormatError::io(format!("{}: dropping its cache", node.display()), e))?;
        let Some(key) = job.volume_key else {
            return format::run_mkfs(job.format, job.label, &node, job.tree);
        };
        let name = format::dm_name(job.label);
        // Left active by an interrupted run in this boot: it maps the partition this
        // run is about to re-create.
        luks::deactivate_stale(&name).map_err(FormatError::Luks)?;
        let mut volume = Luks2::open(&node).map_err(FormatError::Luks)?;
        volume
            .activate_by_volume_key(&name, key, job.integrity)
            .map_err(FormatError::Luks)?;
        let made = mapped_node(&name).and_then(|mapped| {
            if job.integrity {
                initialize_tags(&mapped)?;
            }
            format::run_mkfs(job.format, job.label, &mapped, job.tree)
        });
        let closed = volume.deactivate(&name).map_err(FormatError::Luks);
        made.and(closed)
    }
}

/// Writes zeros over every sector of a new integrity-protected volume, through
/// dm-crypt, so each sector's tag matches its contents: until then a read (udev's
/// blkid probe, a file system's own) fails with EILSEQ. This is cryptsetup's wipe,
/// done here so it can be logged and its progress shown in the journal.
fn initialize_tags(mapped: &Path) -> Result<(), FormatError> {
    use std::io::Write;
    let io = |what: &str, e| FormatError::io(format!("{}: {what}", mapped.display()), e);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(mapped)
        .map_err(|e| io("opening it to initialize its integrity tags", e))?;
    // A block device's end is its size.
    let size = std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0))
        .and_then(|end| std::io::Seek::rewind(&mut f).map(|()| end))
        .map_err(|e| io("reading its size", e))?;
    tracing::info!(
        "{}: initializing the integrity tags of {} MiB",
        mapped.display(),
        size >> 20
    );
    let started = Instant::now();
    let zeros = vec![0u8; WIPE_CHUNK];
    let mut done = 0u64;
    let mut shown = 0u64;
    while done < size {
        let n = (size - done).min(WIPE_CHUNK as u64) as usize;
        f.write_all(&zeros[..n])
            .map_err(|e| io(&format!("writing at byte {done}"), e))?;
        done += n as u64;
        // A line per tenth: the journal is the only progress display in the initrd.
        if done * 10 / size > shown {
            shown = done * 10 / size;
            tracing::info!("{}: integrity tags {}0%", mapped.display(), shown);
        }
    }
    f.sync_all().map_err(|e| io("flushing it", e))?;
    tracing::info!(
        "{}: integrity tags initialized in {:.1} s",
        mapped.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The node of an active device-mapper device: /dev/mapper/<name>, which udev makes,
/// or the kernel's /dev/dm-N where udev has no device-mapper rules.
fn mapped_node(name: &str) -> Result<PathBuf, FormatError> {
    let by_name = Path::new("/dev/mapper").join(name);
    let kernel = || -> Option<PathBuf> {
        std::fs::read_dir("/sys/block")
            .ok()?
            .flatten()
            .find_map(|e| {
                let dm = std::fs::read_to_string(e.path().join("dm/name")).ok()?;
                (dm.trim() == name).then(|| Path::new("/dev").join(e.file_name()))
            })
    };
    wait_for(|| {
        if is_block_device(&by_name) {
            return Some(by_name.clone());
        }
        kernel().filter(|p| is_block_device(p))
    })
    .ok_or_else(|| FormatError::Kernel {
        what: format!(
            "{} did not appear within {} s of activating it",
            by_name.display(),
            NODE_WAIT.as_secs()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt::{GptPartition, PartitionType};
    use uuid::Uuid;

    fn kp(number: u32, start_mib: u64, mib: u64) -> KernelPartition {
        KernelPartition {
            number,
            start: start_mib << 20,
            length: mib << 20,
        }
    }

    #[test]
    fn only_partitions_that_differ_are_deleted_and_added() {
        let kernel = [kp(1, 1, 8), kp(2, 9, 16), kp(8, 40, 60)];
        // Root (8) was re-created larger in its own entry; swap (10) is new.
        let table = [kp(1, 1, 8), kp(2, 9, 16), kp(8, 40, 80), kp(10, 120, 10)];
        let (delete, add) = partition_changes(&kernel, &table);
        assert_eq!(delete, [8]);
        assert_eq!(add, [kp(8, 40, 80), kp(10, 120, 10)]);
        assert_eq!(partition_changes(&table, &table), (vec![], vec![]));
        let (delete, add) = partition_changes(&table, &table[..2]);
        assert_eq!((delete, add), (vec![8, 10], vec![]));
    }

    #[test]
    fn table_partitions_are_in_bytes_with_entry_numbers() {
        let part = |first: u64, last: u64, number| GptPartition {
            kind: PartitionType::Root,
            uuid: Uuid::nil(),
            label: "x".into(),
            first_lba: first,
            last_lba: last,
            attributes: 0,
            number,
        };
        let gpt = Gpt {
            disk_guid: Uuid::nil(),
            sector_size: 4096,
            total_sectors: 1 << 20,
            partitions: vec![part(256, 511, Some(3)), part(512, 767, None)],
        };
        assert_eq!(table_partitions(&gpt), [kp(3, 1, 1), kp(1, 2, 1)]);
    }

    #[test]
    fn partition_nodes_follow_the_kernel_naming() {
        assert_eq!(partition_name("sda", 3), "sda3");
        assert_eq!(partition_name("vda", 12), "vda12");
        assert_eq!(partition_name("nvme0n1", 3), "nvme0n1p3");
        assert_eq!(partition_name("mmcblk0", 1), "mmcblk0p1");
        assert_eq!(partition_name("loop0", 2), "loop0p2");
    }
}
