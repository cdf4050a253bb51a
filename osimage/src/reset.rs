//! Factory reset requests, as systemd 252 reads them: the `FactoryReset` EFI variable
//! (systemd's vendor GUID) holding a boolean string, or `systemd.factory_reset=` on the
//! kernel command line. The request is honoured in the initrd by `osimage firstboot`.

use std::io;

use serde::Serialize;

use crate::boot::efivars::{ATTR_NV_BS_RT, EfiVars};
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
        out
    }
}

/// The request as the next boot will see it. The EFI variable persists across the
/// reboot; the current command line does not decide the next boot, so it is shown
/// but only the variable counts.
pub fn status(vars: Option<&EfiVars>, cmdline: &str) -> io::Result<ResetStatus> {
    let efi_variable = match vars {
        Some(v) => v.get_string(FACTORY_RESET_VAR, SYSTEMD_VENDOR)?,
        None => None,
    };
    Ok(ResetStatus {
        requested: efi_variable
            .as_deref()
            .and_then(parse_boolean)
            .unwrap_or(false),
        efi_variable,
        kernel_cmdline: cmdline_request(cmdline),
        efivarfs: vars.is_some(),
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
        let before = status(Some(&vars), "").ok();
        assert_eq!(before.map(|s| s.requested), Some(false));
        assert!(request(&vars).is_ok());
        // The bytes systemd expects: NV|BS|RT, then "yes" in UTF-16LE with its NUL.
        let raw = std::fs::read(dir.path().join(format!("FactoryReset-{SYSTEMD_VENDOR}")));
        assert_eq!(
            raw.ok(),
            Some(vec![7, 0, 0, 0, b'y', 0, b'e', 0, b's', 0, 0, 0])
        );
        let during = status(Some(&vars), "").ok();
        assert_eq!(during.as_ref().map(|s| s.requested), Some(true));
        assert_eq!(during.and_then(|s| s.efi_variable), Some("yes".to_string()));
        assert!(cancel(&vars).is_ok());
        assert!(cancel(&vars).is_ok(), "cancelling twice is fine");
        assert_eq!(
            status(Some(&vars), "").ok().map(|s| s.requested),
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
    fn without_efivarfs_nothing_is_requested_but_the_cmdline_is_reported() {
        let s = status(None, "systemd.factory_reset=yes").ok();
        assert_eq!(
            s.as_ref()
                .map(|s| (s.requested, s.kernel_cmdline, s.efivarfs)),
            Some((false, Some(true), false))
        );
        assert!(s.is_some_and(|s| s.describe().contains("no efivarfs")));
    }
}
