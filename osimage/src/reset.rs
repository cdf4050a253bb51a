//! Factory reset requests, as systemd 252 reads them: the `FactoryReset` EFI variable
//! (systemd's vendor GUID) holding a boolean string, or `systemd.factory_reset=` on the
//! kernel command line. The request is honoured in the initrd by `osimage firstboot`.

use std::io;

use serde::Serialize;

use crate::boot::efivars::{ATTR_NV_BS_RT, EfiVars};
use crate::boot::status::BootRoot;
use crate::definition::parse_boolean;

/// systemd's vendor GUID for its own EFI variables.
pub const SYSTEMD_VENDOR: &str = "8cf2644b-4b0b-428f-9387-6d876050dc67";
pub const FACTORY_RESET_VAR: &str = "FactoryReset";

/// What the kernel command line says: the last `systemd.factory_reset` wins, and the
/// bare switch means yes. `None` when it says nothing (or nothing parseable).
pub fn cmdline_request(cmdline: &str) -> Option<bool> {
    cmdline
        .split_whitespace()
        .filter_map(|word| match word.split_once('=') {
            Some(("systemd.factory_reset", v)) => Some(parse_boolean(v)),
            None if word == "systemd.factory_reset" => Some(Some(true)),
            _ => None,
        })
        .next_back()
        .flatten()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResetStatus {
    /// The next boot's initrd will reset.
    pub requested: bool,
    /// The EFI variable's value, when set.
    pub efi_variable: Option<String>,
    /// What the running kernel's command line says.
    pub kernel_cmdline: Option<bool>,
    /// Whether EFI variables can be read and written here.
    pub efivarfs: bool,
    /// The one-shot boot entry (made where there is no efivarfs): "pending" until
    /// systemd-boot has started it, "spent" after.
    pub oneshot_entry: Option<&'static str>,
}

impl ResetStatus {
    pub fn describe(&self) -> String {
        let mut out = if self.requested {
            "a factory reset is requested for the next boot (systemd's FactoryReset=yes)"
                .to_string()
        } else {
            "no factory reset is requested".to_string()
        };
        if let Some(v) = &self.efi_variable {
            out.push_str(&format!("\n  EFI variable {FACTORY_RESET_VAR}: {v:?}"));
        }
        if self.kernel_cmdline == Some(true) {
            out.push_str("\n  the running kernel's command line has systemd.factory_reset=yes");
        }
        if !self.efivarfs {
            out.push_str("\n  no efivarfs: EFI variables cannot be read here");
        }
        match self.oneshot_entry {
            Some("pending") => out.push_str(&format!(
                "\n  one-shot boot entry {ONESHOT_ID}: the next boot starts with \
                 systemd.factory_reset=yes"
            )),
            Some(_) => out.push_str(&format!(
                "\n  one-shot boot entry {ONESHOT_ID} was used; `factory-reset cancel` removes it"
            )),
            None => {}
        }
        out
    }
}

/// The request as the next boot will see it. The EFI variable persists across the
/// reboot; the current command line does not decide the next boot, so it is shown
/// but only the variable counts.
pub fn status(
    vars: Option<&EfiVars>,
    esp: Option<&mut BootRoot>,
    cmdline: &str,
) -> io::Result<ResetStatus> {
    let efi_variable = match vars {
        Some(v) => v.get_string(FACTORY_RESET_VAR, SYSTEMD_VENDOR)?,
        None => None,
    };
    let oneshot_entry = match esp {
        Some(root) => {
            let found = oneshot_entries(root)?;
            if found.iter().any(|(_, left)| left.is_none_or(|l| l > 0)) {
                Some("pending")
            } else if found.is_empty() {
                None
            } else {
                Some("spent")
            }
        }
        None => None,
    };
    Ok(ResetStatus {
        requested: efi_variable
            .as_deref()
            .and_then(parse_boolean)
            .unwrap_or(false)
            || oneshot_entry == Some("pending"),
        efi_variable,
        kernel_cmdline: cmdline_request(cmdline),
        efivarfs: vars.is_some(),
        oneshot_entry,
    })
}

/// Sets `FactoryReset=yes` (non-volatile), as systemd's tools would.
pub fn request(vars: &EfiVars) -> io::Result<()> {
    vars.set_string(FACTORY_RESET_VAR, SYSTEMD_VENDOR, ATTR_NV_BS_RT, "yes")
}

/// Removes the variable; a missing one is not an error.
pub fn cancel(vars: &EfiVars) -> io::Result<()> {
    vars.delete(FACTORY_RESET_VAR, SYSTEMD_VENDOR)
}

/// Where Type #1 entries live on the ESP.
pub const ENTRIES_DIR: &str = "loader/entries";
/// The one-shot entry's id; the file carries a boot counter: `+1` until systemd-boot
/// has started it once, `+0-1` after.
pub const ONESHOT_ID: &str = "osimage-factory-reset";
/// systemd-boot orders entries with a sort key by `strcmp`, and defaults to the first
/// that has tries left: `0` sorts before any os-release ID a UKI's sort key comes from.
const ONESHOT_SORT_KEY: &str = "0-osimage-factory-reset";

/// A Type #1 entry that starts `uki` with its own command line plus
/// `systemd.factory_reset=yes`. systemd-stub takes the entry's options in place of the
/// built-in command line only without Secure Boot; with it, efivarfs is the way.
pub fn oneshot_entry_text(uki_file: &str, cmdline: &str) -> String {
    format!(
        "title Factory reset (this boot only)\nsort-key {ONESHOT_SORT_KEY}\nefi /{}/{uki_file}\n\
         options {} systemd.factory_reset=yes\n",
        crate::boot::esp::UKI_DIR,
        cmdline.trim_matches(|c: char| c.is_whitespace() || c == '\0')
    )
}

/// The one-shot entries on the ESP: (file name, tries left).
pub fn oneshot_entries(root: &mut BootRoot) -> io::Result<Vec<(String, Option<u32>)>> {
    Ok(root
        .list(ENTRIES_DIR)?
        .into_iter()
        .filter_map(|name| {
            let (id, left, _) = crate::boot::entry::split_counter(name.strip_suffix(".conf")?);
            (id == ONESHOT_ID).then_some((name.clone(), left))
        })
        .collect())
}

/// Requests a reset without EFI variables: a one-shot entry for the UKI systemd-boot
/// would start by default. Returns the UKI's file name.
pub fn request_oneshot(root: &mut BootRoot) -> io::Result<String> {
    let entries = crate::boot::entry::sorted(&root.entries()?);
    let uki = crate::boot::entry::select(&entries, None, None)
        .map(|i| entries[i].file_name.clone())
        .ok_or_else(|| io::Error::other("no bootable UKI on the ESP to reset into"))?;
    let image = root
        .read(&format!("{}/{uki}", crate::boot::esp::UKI_DIR))?
        .ok_or_else(|| io::Error::other(format!("{uki} vanished")))?;
    let cmdline = crate::uki::pe::section_data(&image, ".cmdline")
        .map_err(|e| io::Error::other(format!("{uki}: {e}")))?
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    cancel_oneshot(root)?;
    root.write(
        ENTRIES_DIR,
        &format!("{ONESHOT_ID}+1.conf"),
        oneshot_entry_text(&uki, &cmdline).as_bytes(),
    )?;
    Ok(uki)
}

/// Removes every one-shot entry, pending or spent. Returns how many.
pub fn cancel_oneshot(root: &mut BootRoot) -> io::Result<usize> {
    let found = oneshot_entries(root)?;
    for (name, _) in &found {
        root.remove(ENTRIES_DIR, name)?;
    }
    Ok(found.len())
}

/// The request as the initrd sees it: the `FactoryReset` EFI variable, or
/// `systemd.factory_reset=yes` on this boot's command line (the one-shot entry made
/// where there is no efivarfs). A command-line request cannot be withdrawn, so once
/// honoured a file on the per-boot /run (firstboot's staging
/// directory) says so: firstboot run twice in one boot
/// must not erase the root it just made.
#[derive(Debug)]
pub struct BootRequest {
    pub vars: Option<EfiVars>,
    pub cmdline: Option<bool>,
    pub done: std::path::PathBuf,
}

impl crate::firstboot::ResetRequest for BootRequest {
    fn requested(&self) -> io::Result<bool> {
        let var = match &self.vars {
            Some(v) => v
                .get_string(FACTORY_RESET_VAR, SYSTEMD_VENDOR)?
                .as_deref()
                .and_then(parse_boolean)
                .unwrap_or(false),
            None => false,
        };
        Ok(var || (self.cmdline == Some(true) && !self.done.exists()))
    }

    fn clear(&mut self) -> io::Result<()> {
        if let Some(v) = &self.vars {
            cancel(v)?;
        }
        if self.cmdline == Some(true) {
            if let Some(dir) = self.done.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&self.done, b"")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_follows_systemd_rules() {
        assert_eq!(cmdline_request("quiet"), None);
        assert_eq!(cmdline_request("systemd.factory_reset"), Some(true));
        assert_eq!(cmdline_request("systemd.factory_reset=1 ro"), Some(true));
        assert_eq!(
            cmdline_request("systemd.factory_reset=yes systemd.factory_reset=off"),
            Some(false)
        );
        assert_eq!(cmdline_request("systemd.factory_reset=maybe"), None);
        assert_eq!(cmdline_request("xsystemd.factory_reset=1"), None);
    }

    #[test]
    fn request_status_cancel_round_trip() {
        let dir = tempfile::tempdir().ok();
        let Some(dir) = dir else { return };
        let vars = EfiVars::new(dir.path());
        let before = status(Some(&vars), None, "").ok();
        assert_eq!(before.map(|s| s.requested), Some(false));
        assert!(request(&vars).is_ok());
        // The bytes systemd expects: NV|BS|RT, then "yes" in UTF-16LE with its NUL.
        let raw = std::fs::read(dir.path().join(format!("FactoryReset-{SYSTEMD_VENDOR}")));
        assert_eq!(
            raw.ok(),
            Some(vec![7, 0, 0, 0, b'y', 0, b'e', 0, b's', 0, 0, 0])
        );
        let during = status(Some(&vars), None, "").ok();
        assert_eq!(during.as_ref().map(|s| s.requested), Some(true));
        assert_eq!(during.and_then(|s| s.efi_variable), Some("yes".to_string()));
        assert!(cancel(&vars).is_ok());
        assert!(cancel(&vars).is_ok(), "cancelling twice is fine");
        assert_eq!(
            status(Some(&vars), None, "").ok().map(|s| s.requested),
            Some(false)
        );
    }

    #[test]
    fn a_command_line_request_is_honoured_once_per_boot() {
        use crate::firstboot::ResetRequest;
        let Ok(dir) = tempfile::tempdir() else { return };
        let vars = EfiVars::new(dir.path());
        assert!(request(&vars).is_ok());
        let mut r = BootRequest {
            vars: Some(vars),
            cmdline: Some(true),
            done: dir.path().join("run/done"),
        };
        assert!(r.requested().unwrap_or(false));
        assert!(r.clear().is_ok());
        assert!(
            !r.requested().unwrap_or(true),
            "cleared, and done for this boot"
        );
        assert!(r.done.exists());
    }

    #[test]
    fn the_oneshot_entry_keeps_the_ukis_command_line_and_adds_the_request() {
        let text = oneshot_entry_text("tessera_1.0+3.efi", "usrhash=ab quiet\0");
        assert_eq!(
            text,
            "title Factory reset (this boot only)\nsort-key 0-osimage-factory-reset\n\
             efi /EFI/Linux/tessera_1.0+3.efi\noptions usrhash=ab quiet systemd.factory_reset=yes\n"
        );
        let Ok(dir) = tempfile::tempdir() else { return };
        let mut root = BootRoot::Dir(dir.path().to_owned());
        let _ = std::fs::create_dir_all(dir.path().join(ENTRIES_DIR));
        let _ = std::fs::write(
            dir.path()
                .join(ENTRIES_DIR)
                .join("osimage-factory-reset+0-1.conf"),
            "",
        );
        let _ = std::fs::write(dir.path().join(ENTRIES_DIR).join("other.conf"), "");
        let st = status(None, Some(&mut root), "").ok();
        assert_eq!(
            st.map(|s| (s.requested, s.oneshot_entry)),
            Some((false, Some("spent")))
        );
        assert_eq!(cancel_oneshot(&mut root).ok(), Some(1));
        assert!(dir.path().join(ENTRIES_DIR).join("other.conf").exists());
    }

    #[test]
    fn without_efivarfs_nothing_is_requested_but_the_cmdline_is_reported() {
        let s = status(None, None, "systemd.factory_reset=yes").ok();
        assert_eq!(
            s.as_ref()
                .map(|s| (s.requested, s.kernel_cmdline, s.efivarfs)),
            Some((false, Some(true), false))
        );
        assert!(s.is_some_and(|s| s.describe().contains("no efivarfs")));
    }
}
