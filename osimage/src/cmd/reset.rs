//! `osimage factory-reset`.

use std::path::Path;
use std::process::ExitCode;

use osimage::boot::efivars::EfiVars;
use osimage::boot::status::BootRoot;
use osimage::reset;

use crate::ResetCommand;

/// Exit status when EFI variables are unavailable.
const EXIT_NO_EFIVARS: u8 = 3;

pub(crate) fn reset_cmd(
    command: ResetCommand,
    efivars: Option<&Path>,
    esp: Option<&Path>,
    image: Option<&Path>,
    dry_run: bool,
    json: bool,
) -> ExitCode {
    let vars = EfiVars::at_or_system(efivars);
    // The ESP matters only without efivarfs (the one-shot entry) and for status.
    let mut root = match (image, esp) {
        (Some(i), _) => match BootRoot::image(i) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("osimage: error: {}: {e}", i.display());
                return ExitCode::FAILURE;
            }
        },
        (None, Some(d)) => d.is_dir().then(|| BootRoot::Dir(d.to_owned())),
        (None, None) => BootRoot::find_mounted(),
    };
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let result = (|| -> std::io::Result<Option<reset::ResetStatus>> {
        let request = matches!(command, ResetCommand::Request);
        match (command, &vars, root.as_mut()) {
            (ResetCommand::Status, _, _) => {}
            (_, Some(vars), _) => {
                if dry_run {
                    println!(
                        "would {} EFI variable {}-{}",
                        if request {
                            "set to \"yes\" the"
                        } else {
                            "delete the"
                        },
                        reset::FACTORY_RESET_VAR,
                        reset::SYSTEMD_VENDOR
                    );
                } else if request {
                    reset::request(vars)?;
                } else {
                    reset::cancel(vars)?;
                }
                // A one-shot entry from an earlier request without efivarfs goes too.
                if !request
                    && !dry_run
                    && let Some(r) = root.as_mut()
                {
                    reset::cancel_oneshot(r)?;
                }
            }
            (_, None, Some(r)) => {
                if dry_run {
                    println!(
                        "would {} the one-shot boot entry {}",
                        if request { "write" } else { "remove" },
                        reset::ONESHOT_ID
                    );
                } else if request {
                    let uki = reset::request_oneshot(r)?;
                    eprintln!(
                        "no efivarfs: the next boot starts {uki} once with systemd.factory_reset=yes"
                    );
                } else {
                    reset::cancel_oneshot(r)?;
                }
            }
            (_, None, None) => return Ok(None),
        }
        Ok(Some(reset::status(vars.as_ref(), root.as_mut(), &cmdline)?))
    })();
    match result {
        Ok(Some(status)) => {
            if json {
                println!("{}", serde_json::json!(status));
            } else {
                println!("{}", status.describe());
            }
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!(
                "osimage: error: no efivarfs ({}) and no ESP (mounted at /efi, /boot/efi or \
                 /boot, or given with --esp/--image): nowhere to record a factory reset \
                 request; boot once with systemd.factory_reset=yes on the kernel command line",
                efivars.map_or_else(
                    || "/sys/firmware/efi/efivars".into(),
                    |p| p.display().to_string()
                )
            );
            ExitCode::from(EXIT_NO_EFIVARS)
        }
        Err(e) => {
            eprintln!("osimage: error: factory reset request: {e}");
            ExitCode::FAILURE
        }
    }
}
