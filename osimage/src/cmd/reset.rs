//! `osimage factory-reset`.

use std::path::Path;
use std::process::ExitCode;

use osimage::boot::efivars::EfiVars;
use osimage::reset;

use crate::ResetCommand;

/// Exit status when EFI variables are unavailable.
const EXIT_NO_EFIVARS: u8 = 3;

pub(crate) fn reset_cmd(
    command: ResetCommand,
    efivars: Option<&Path>,
    dry_run: bool,
    json: bool,
) -> ExitCode {
    let vars = match efivars {
        Some(dir) => dir.is_dir().then(|| EfiVars::new(dir)),
        None => EfiVars::system(),
    };
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let result = (|| -> std::io::Result<Option<reset::ResetStatus>> {
        match command {
            ResetCommand::Status => Ok(Some(reset::status(vars.as_ref(), &cmdline)?)),
            ResetCommand::Request | ResetCommand::Cancel => {
                let Some(vars) = &vars else {
                    return Ok(None);
                };
                if dry_run {
                    println!(
                        "would {} EFI variable {}-{}",
                        if matches!(command, ResetCommand::Request) {
                            "set to \"yes\" the"
                        } else {
                            "delete the"
                        },
                        reset::FACTORY_RESET_VAR,
                        reset::SYSTEMD_VENDOR
                    );
                } else if matches!(command, ResetCommand::Request) {
                    reset::request(vars)?;
                } else {
                    reset::cancel(vars)?;
                }
                Ok(Some(reset::status(Some(vars), &cmdline)?))
            }
        }
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
                "osimage: error: no efivarfs ({}): cannot record a factory reset request \
                 without EFI variables; boot once with systemd.factory_reset=yes on the \
                 kernel command line instead",
                efivars.map_or_else(
                    || "/sys/firmware/efi/efivars".into(),
                    |p| p.display().to_string()
                )
            );
            ExitCode::from(EXIT_NO_EFIVARS)
        }
        Err(e) => {
            eprintln!(
                "osimage: error: EFI variable {}: {e}",
                reset::FACTORY_RESET_VAR
            );
            ExitCode::FAILURE
        }
    }
}
