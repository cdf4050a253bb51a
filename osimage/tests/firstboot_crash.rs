//! Power loss at every write of firstboot and of a factory reset. The disk and the
//! reset request (an EFI variable) share one power supply: the N-th write of either
//! is the last that lands. After each cut the disk must be consistent, and firstboot
//! run again must finish the job.
//!
//! Consistent means: the partition table is valid; every encrypted partition it
//! lists opens with the recovery key last shown for it (no root whose key material
//! is gone while its data is still expected), except partitions a reset has marked
//! (those are on their way out, and the mark makes the reset finish); and a cleared
//! request never leaves a marked partition behind.
//!
//! On a block device firstboot also makes file systems; there a partition must not
//! carry its own label before its file system is complete.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;
use std::rc::Rc;

use osimage::disk::{Disk, MemDisk, POWER_LOST, read_gpt};
use osimage::firstboot::{
    self, BlockDevice, Firstboot, FirstbootError, FormatError, FormatJob, RESET_LABEL,
    ResetRequest, WithoutTpm,
};
use osimage::gpt::{GptPartition, PartitionType};
use osimage::luks::Luks2;
use osimage::luks::enroll::Tpm2Binding;
use osimage::luks::header::Luks2Header;
use osimage::tpm2::Tpm;
use tessera_rig::Swtpm;
use uuid::Uuid;

#[path = "support/disk.rs"]
mod disk;
#[path = "support/tpm.rs"]
mod tpm;
use disk::{MIB, definitions, digest, installed_disk, read};

/// A power supply that gives out after `budget` writes.
struct Power {
    budget: Cell<usize>,
    writes: Cell<usize>,
}

impl Power {
    fn spend(&self) -> io::Result<()> {
        if self.writes.get() >= self.budget.get() {
            return Err(io::Error::other(POWER_LOST));
        }
        self.writes.set(self.writes.get() + 1);
        Ok(())
    }
}

struct PoweredDisk {
    inner: MemDisk,
    power: Rc<Power>,
}

impl Disk for PoweredDisk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.power.spend()?;
        self.inner.write_at(offset, data)
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The FactoryReset EFI variable: clearing it is a write like any other.
struct Variable {
    set: bool,
    power: Rc<Power>,
}

impl ResetRequest for Variable {
    fn requested(&self) -> io::Result<bool> {
        Ok(self.set)
    }
    fn clear(&mut self) -> io::Result<()> {
        self.power.spend()?;
        self.set = false;
        Ok(())
    }
}

/// A block device stand-in. Telling the kernel about a table costs nothing; making
/// a file system is work on the disk, so it costs a write of power and can be cut.
/// It records the partitions (by GPT UUID) whose file system was completed.
struct FakeBlock {
    power: Rc<Power>,
    formatted: Rc<RefCell<HashSet<Uuid>>>,
}

impl BlockDevice for FakeBlock {
    fn sync_partitions(&mut self, _gpt: &osimage::gpt::Gpt) -> Result<(), FormatError> {
        Ok(())
    }
    fn format(&mut self, job: &FormatJob<'_>) -> Result<(), FormatError> {
        self.power.spend().map_err(|e| FormatError::io("mkfs", e))?;
        // Every formatted partition of the test definitions is encrypted.
        assert_eq!(job.volume_key.map(<[u8]>::len), Some(64), "{job:?}");
        self.formatted.borrow_mut().insert(job.uuid);
        Ok(())
    }
}

struct Machine {
    tpm: Tpm,
    binding: Tpm2Binding,
    defs: Vec<osimage::definition::PartitionDefinition>,
    staging: tempfile::TempDir,
    /// The recovery key last shown for each partition label.
    shown: RefCell<HashMap<String, String>>,
    /// With `Some`, the disk is a block device: the partitions whose file system
    /// was made.
    formatted: Option<Rc<RefCell<HashSet<Uuid>>>>,
}

impl Machine {
    /// One boot's firstboot on `disk`, with `budget` writes of power.
    fn boot(
        &mut self,
        disk: MemDisk,
        request: bool,
        budget: usize,
    ) -> (MemDisk, bool, usize, Result<(), FirstbootError>) {
        let power = Rc::new(Power {
            budget: Cell::new(budget),
            writes: Cell::new(0),
        });
        let mut d = PoweredDisk {
            inner: disk,
            power: power.clone(),
        };
        let mut var = Variable {
            set: request,
            power: power.clone(),
        };
        let mut block = self.formatted.clone().map(|formatted| FakeBlock {
            power: power.clone(),
            formatted,
        });
        let shown = &self.shown;
        let mut show = |k: &firstboot::RecoveryKey| {
            for p in &k.partitions {
                shown.borrow_mut().insert(p.clone(), k.key.clone());
            }
            Ok(())
        };
        let result = firstboot::run(
            &mut d,
            Firstboot {
                definitions: &self.defs,
                tpm: Some(&mut self.tpm),
                binding: &self.binding,
                without_tpm: WithoutTpm::Fail,
                reset: &mut var,
                staging: self.staging.path(),
                show_recovery_key: &mut show,
                block: block.as_mut().map(|b| b as &mut dyn BlockDevice),
                dry_run: false,
            },
        );
        (d.inner, var.set, power.writes.get(), result.map(|_| ()))
    }

    fn opens(&self, disk: &MemDisk, p: &GptPartition, key: &str) -> bool {
        let file = tempfile::NamedTempFile::new_in(self.staging.path()).unwrap();
        let mut head = vec![0u8; (16 * MIB).min(p.sectors() * 512) as usize];
        disk.read_at(p.first_lba * 512, &mut head).unwrap();
        std::fs::write(file.path(), &head).unwrap();
        file.as_file().set_len(p.sectors() * 512).unwrap();
        Luks2::open(file.path())
            .and_then(|mut l| l.check(None, key.as_bytes()))
            .is_ok()
    }

    /// The consistency every power cut must leave.
    fn check_consistent(&self, disk: &MemDisk, at: usize) {
        let gpt = read_gpt(disk).unwrap_or_else(|e| panic!("cut at write {at}: no table: {e}"));
        gpt.validate().unwrap();
        for p in &gpt.partitions {
            if !matches!(
                p.kind,
                PartitionType::Root | PartitionType::Home | PartitionType::Swap
            ) || p.label == RESET_LABEL
            {
                continue;
            }
            let mut area = vec![0u8; (8 * MIB) as usize];
            disk.read_at(p.first_lba * 512, &mut area).unwrap();
            Luks2Header::parse(&area).unwrap_or_else(|e| {
                panic!(
                    "cut at write {at}: {} is listed but its header is gone: {e}",
                    p.label
                )
            });
            let key = self.shown.borrow().get(&p.label).cloned().unwrap();
            assert!(
                self.opens(disk, p, &key),
                "cut at write {at}: the recovery key shown for {} does not open it",
                p.label
            );
            if let Some(formatted) = &self.formatted
                && p.kind != PartitionType::Home
            {
                assert!(
                    formatted.borrow().contains(&p.uuid),
                    "cut at write {at}: {} carries its label but has no file system",
                    p.label
                );
            }
        }
    }
}

fn machine(swtpm: &Swtpm, dir: &Path) -> Machine {
    let (_, public) = tpm::pcr_keypair(dir, "pcr");
    Machine {
        tpm: tpm::client(swtpm),
        binding: Tpm2Binding {
            pcrs: vec![7],
            signed: Some((std::fs::read_to_string(public).unwrap(), vec![11])),
        },
        defs: osimage::definition::repart_conf::load_dir(&definitions(dir, "tpm2")).unwrap(),
        staging: tempfile::tempdir().unwrap(),
        shown: RefCell::new(HashMap::new()),
        formatted: None,
    }
}

fn partition(disk: &MemDisk, kind: PartitionType) -> GptPartition {
    read_gpt(disk)
        .unwrap()
        .partitions
        .into_iter()
        .find(|p| p.kind == kind)
        .unwrap()
}

/// What neither firstboot nor a reset may change: ESP, the A usr slot, and (after
/// firstboot) the B slot and home.
fn untouched(disk: &MemDisk) -> Vec<String> {
    read_gpt(disk)
        .unwrap()
        .partitions
        .iter()
        .filter(|p| !matches!(p.kind, PartitionType::Root | PartitionType::Swap))
        .map(|p| format!("{} {} {}", p.kind, p.label, digest(&read(disk, p))))
        .collect()
}

#[test]
fn firstboot_survives_power_loss_at_every_write() {
    let swtpm = Swtpm::tcp().unwrap();
    let dir = tempfile::tempdir().unwrap();
    tpm::extend(&swtpm, 7, b"secure boot state");
    let mut m = machine(&swtpm, dir.path());
    let base = MemDisk(std::fs::read(installed_disk(dir.path(), 120)).unwrap());
    let before = untouched(&base);

    let (_, _, total, r) = m.boot(base.clone(), false, usize::MAX);
    r.unwrap();
    assert!(total > 40, "{total} writes");
    sweep(&mut m, &base, total, |done, _, cut| {
        assert_eq!(untouched(done)[..4], before[..], "cut at write {cut}");
    });
    println!("firstboot: {total} crash points tested, each finished by the next boot");
}

/// Cuts a first boot from `base` at each of its `total` writes: the cut leaves a
/// consistent disk, and the next boot finishes it with all ten partitions;
/// `finished` checks what that boot left.
fn sweep(
    m: &mut Machine,
    base: &MemDisk,
    total: usize,
    finished: impl Fn(&MemDisk, &osimage::gpt::Gpt, usize),
) {
    for cut in 0..total {
        m.shown.borrow_mut().clear();
        let (crashed, _, _, r) = m.boot(base.clone(), false, cut);
        assert!(r.is_err(), "cut at write {cut} of {total} did not cut");
        m.check_consistent(&crashed, cut);
        let (done, _, _, r) = m.boot(crashed, false, usize::MAX);
        r.unwrap_or_else(|e| panic!("cut at write {cut}: the next boot failed: {e}"));
        m.check_consistent(&done, cut);
        let gpt = read_gpt(&done).unwrap();
        assert_eq!(gpt.partitions.len(), 10, "cut at write {cut}");
        finished(&done, &gpt, cut);
    }
}

#[test]
fn on_a_block_device_no_partition_is_labelled_before_its_file_system_is_made() {
    let swtpm = Swtpm::tcp().unwrap();
    let dir = tempfile::tempdir().unwrap();
    tpm::extend(&swtpm, 7, b"secure boot state");
    let mut m = machine(&swtpm, dir.path());
    m.formatted = Some(Rc::default());
    let base = MemDisk(std::fs::read(installed_disk(dir.path(), 120)).unwrap());

    let (done, _, total, r) = m.boot(base.clone(), false, usize::MAX);
    r.unwrap();
    m.check_consistent(&done, total);
    let labels: Vec<String> = read_gpt(&done)
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.label.clone())
        .collect();
    assert_eq!(labels[7..], ["root", "home", "swap"]);
    sweep(&mut m, &base, total, |_, gpt, cut| {
        assert!(
            gpt.partitions.iter().all(|p| p.label != RESET_LABEL),
            "cut at write {cut}"
        );
    });
    println!("firstboot on a block device: {total} crash points tested");
}

#[test]
fn a_factory_reset_survives_power_loss_at_every_write() {
    let swtpm = Swtpm::tcp().unwrap();
    let dir = tempfile::tempdir().unwrap();
    tpm::extend(&swtpm, 7, b"secure boot state");
    let mut m = machine(&swtpm, dir.path());
    let (installed, _, _, r) = m.boot(
        MemDisk(std::fs::read(installed_disk(dir.path(), 120)).unwrap()),
        false,
        usize::MAX,
    );
    r.unwrap();
    let old_root = partition(&installed, PartitionType::Root);
    let mut area = vec![0u8; (8 * MIB) as usize];
    installed
        .read_at(old_root.first_lba * 512, &mut area)
        .unwrap();
    let old_uuid = Luks2Header::parse(&area).unwrap().uuid;
    let old_key = m.shown.borrow()["root"].clone();
    let kept = untouched(&installed);

    let shown_at_install = m.shown.borrow().clone();
    let (_, request, total, r) = m.boot(installed.clone(), true, usize::MAX);
    r.unwrap();
    assert!(!request);
    for cut in 0..total {
        // The user has seen the keys of the installed disk, nothing later.
        *m.shown.borrow_mut() = shown_at_install.clone();
        let (crashed, request, _, r) = m.boot(installed.clone(), true, cut);
        assert!(r.is_err(), "cut at write {cut} of {total} did not cut");
        m.check_consistent(&crashed, cut);
        if !request {
            // Withdrawn only once the old root is gone: the reset cannot be lost.
            let gpt = read_gpt(&crashed).unwrap();
            assert!(
                gpt.partitions.iter().all(|p| p.label != RESET_LABEL),
                "cut at write {cut}: the request was withdrawn with the reset half-done"
            );
            if let Some(root) = gpt
                .partitions
                .iter()
                .find(|p| p.kind == PartitionType::Root)
            {
                crashed.read_at(root.first_lba * 512, &mut area).unwrap();
                assert_ne!(Luks2Header::parse(&area).unwrap().uuid, old_uuid);
            }
        }
        let (done, request, _, r) = m.boot(crashed, request, usize::MAX);
        r.unwrap_or_else(|e| panic!("cut at write {cut}: the next boot failed: {e}"));
        assert!(!request, "cut at write {cut}: the request is still pending");
        m.check_consistent(&done, cut);
        assert_eq!(untouched(&done), kept, "cut at write {cut}");
        let root = partition(&done, PartitionType::Root);
        done.read_at(root.first_lba * 512, &mut area).unwrap();
        assert_ne!(
            Luks2Header::parse(&area).unwrap().uuid,
            old_uuid,
            "cut at write {cut}: the reset did not finish"
        );
        assert!(
            !m.opens(&done, &root, &old_key),
            "cut at write {cut}: the old recovery key still opens root"
        );
    }
    println!("factory reset: {total} crash points tested, each finished by the next boot");
}
