//! A busybox initrd built from the cached artifacts: enough userland to probe what
//! the guest kernel sees, with chosen kernel modules and their dependencies.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::cpio::Cpio;
use crate::{Artifacts, Result, RigError, io_err};

/// An initrd whose `/init` loads `modules` and then runs `script` under busybox sh.
/// The guest powers off when the script ends.
#[derive(Debug, Default)]
pub struct BusyboxInitrd {
    modules: Vec<String>,
    script: String,
}

impl BusyboxInitrd {
    pub fn new() -> BusyboxInitrd {
        BusyboxInitrd::default()
    }

    /// Loads this module (and what it depends on) before the script runs. Modules the
    /// kernel has built in are accepted and skipped.
    pub fn module(mut self, name: &str) -> BusyboxInitrd {
        self.modules.push(name.to_owned());
        self
    }

    /// The shell code to run once /proc, /sys and /dev are mounted.
    pub fn script(mut self, script: &str) -> BusyboxInitrd {
        self.script = script.to_owned();
        self
    }

    /// The initrd bytes (uncompressed newc cpio).
    pub fn build(&self, art: &Artifacts) -> Result<Vec<u8>> {
        let busybox = std::fs::read(&art.busybox).map_err(io_err("read busybox"))?;
        let deps = ModuleDeps::load(&art.modules)?;
        let order = deps.load_order(&self.modules)?;

        let mut c = Cpio::new();
        for dir in [
            "proc", "sys", "dev", "tmp", "sbin", "usr/bin", "usr/sbin", "mnt",
        ] {
            c.dir(dir);
        }
        c.char_dev("dev/console", 5, 1);
        c.file("bin/busybox", 0o755, &busybox);
        c.symlink("bin/sh", "busybox");

        let mut init = String::from(
            "#!/bin/sh\n\
             /bin/busybox --install -s\n\
             mount -t proc proc /proc\n\
             mount -t sysfs sysfs /sys\n\
             mount -t devtmpfs devtmpfs /dev\n\
             echo 'rig: initrd up'\n",
        );
        for rel in &order {
            let src = art.modules.join(rel);
            let data = std::fs::read(&src).map_err(io_err(format!("read {}", src.display())))?;
            let dest = format!("lib/modules/{rel}");
            c.file(&dest, 0o644, &data);
            init.push_str(&format!(
                "insmod /{dest} || echo 'rig: insmod {rel} failed'\n"
            ));
        }
        init.push_str("mdev -s 2>/dev/null\n");
        init.push_str(&self.script);
        init.push_str("\necho 'rig: script done'\nsync\npoweroff -f\n");
        c.file("init", 0o755, init.as_bytes());
        Ok(c.finish())
    }

    /// Builds and writes the initrd to `path`.
    pub fn write(&self, art: &Artifacts, path: &Path) -> Result<()> {
        let bytes = self.build(art)?;
        std::fs::write(path, bytes).map_err(io_err(format!("write {}", path.display())))
    }
}

/// `modules.dep` and `modules.builtin` of one kernel.
#[derive(Debug)]
pub struct ModuleDeps {
    /// module name (with `_`) → (path relative to the modules dir, dependencies' paths)
    by_name: BTreeMap<String, (String, Vec<String>)>,
    builtin: HashSet<String>,
}

/// Module names treat `-` and `_` alike.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

impl ModuleDeps {
    pub fn load(modules: &Path) -> Result<ModuleDeps> {
        let dep = std::fs::read_to_string(modules.join("modules.dep"))
            .map_err(io_err("read modules.dep"))?;
        let builtin = std::fs::read_to_string(modules.join("modules.builtin")).unwrap_or_default();
        Ok(ModuleDeps::parse(&dep, &builtin))
    }

    pub fn parse(dep: &str, builtin: &str) -> ModuleDeps {
        let by_name = dep
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(module, deps)| {
                let deps = deps.split_whitespace().map(str::to_owned).collect();
                (module_name(module), (module.to_owned(), deps))
            })
            .collect();
        let builtin = builtin.lines().map(module_name).collect();
        ModuleDeps { by_name, builtin }
    }

    /// Module paths in an order where each comes after everything it depends on.
    pub fn load_order(&self, wanted: &[String]) -> Result<Vec<String>> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        for name in wanted {
            let key = name.replace('-', "_");
            match self.by_name.get(&key) {
                Some((path, _)) => self.visit(path, &mut seen, &mut order),
                None if self.builtin.contains(&key) => {}
                None => {
                    return Err(RigError::Failed(format!(
                        "kernel module {name} is neither in modules.dep nor built in"
                    )));
                }
            }
        }
        Ok(order)
    }

    fn visit(&self, path: &str, seen: &mut HashSet<String>, order: &mut Vec<String>) {
        if !seen.insert(path.to_owned()) {
            return;
        }
        if let Some((_, deps)) = self.by_name.get(&module_name(path)) {
            for dep in deps {
                self.visit(dep, seen, order);
            }
        }
        order.push(path.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_load_first_and_once() {
        let dep = "kernel/a/virtio-gpu.ko: kernel/b/drm_shmem_helper.ko kernel/c/drm.ko\n\
                   kernel/b/drm_shmem_helper.ko: kernel/c/drm.ko\n\
                   kernel/c/drm.ko:\n\
                   kernel/d/tpm_crb.ko:\n";
        let deps = ModuleDeps::parse(dep, "kernel/e/virtio_pci.ko\n");
        let order = deps
            .load_order(&["virtio_gpu".into(), "virtio_pci".into(), "drm".into()])
            .unwrap();
        assert_eq!(
            order,
            [
                "kernel/c/drm.ko",
                "kernel/b/drm_shmem_helper.ko",
                "kernel/a/virtio-gpu.ko"
            ]
        );
        assert!(deps.load_order(&["nonexistent".into()]).is_err());
    }
}
