//! `osimage boot`.

use std::path::PathBuf;

use anyhow::Context;

use crate::BootCommand;

pub(crate) fn boot_cmd(
    image: Option<PathBuf>,
    esp: Option<PathBuf>,
    cmd: BootCommand,
    json: bool,
) -> anyhow::Result<()> {
    use osimage::boot::efivars::EfiVars;
    use osimage::boot::status::{self, BootRoot};
    let vars = EfiVars::system();
    let open_root = || -> anyhow::Result<BootRoot> {
        Ok(match (&image, &esp) {
            (Some(i), _) => BootRoot::image(i).with_context(|| i.display().to_string())?,
            (None, Some(d)) => BootRoot::Dir(d.clone()),
            (None, None) => BootRoot::find_mounted().context(
                "no ESP with EFI/Linux under /efi, /boot/efi or /boot (use --esp or --image)",
            )?,
        })
    };
    // EFI variables describe this machine's boot, not a disk image's.
    let vars_for_root = if image.is_some() { None } else { vars.as_ref() };
    match cmd {
        BootCommand::Status => {
            let st = status::status(&mut open_root()?, vars_for_root)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                println!(
                    "{:<36} {:<10} {:>5} {:>5} {:<14} flags",
                    "entry", "version", "left", "done", "state"
                );
                for e in &st.entries {
                    let opt = |v: Option<u32>| v.map_or("-".to_owned(), |n| n.to_string());
                    let mut flags = Vec::new();
                    if e.default {
                        flags.push("default");
                    }
                    if e.booted {
                        flags.push("booted");
                    }
                    println!(
                        "{:<36} {:<10} {:>5} {:>5} {:<14} {}",
                        e.entry.file_name,
                        e.version,
                        opt(e.entry.tries_left),
                        opt(e.entry.tries_done),
                        e.state,
                        flags.join(",")
                    );
                }
                if let (Some(b), Some(src)) = (&st.booted, st.booted_source) {
                    println!(
                        "booted: {b} (from {})",
                        serde_json::to_value(src)?.as_str().unwrap_or("")
                    );
                }
            }
        }
        BootCommand::Bless { entry } => {
            match status::bless(&mut open_root()?, vars_for_root, entry.as_deref())? {
                Some(to) => println!("blessed: now {to}"),
                None => println!("already good"),
            }
        }
        BootCommand::MarkBad { entry } => println!(
            "marked bad: now {}",
            status::mark_bad(&mut open_root()?, &entry)?
        ),
        BootCommand::SetDefault { id } | BootCommand::Oneshot { id } if image.is_some() => {
            anyhow::bail!(
                "{id}: default and one-shot choices are EFI variables of the running machine, not part of a disk image"
            )
        }
        BootCommand::SetDefault { id } => {
            let v =
                vars.context("no efivarfs (/sys/firmware/efi/efivars): not booted with UEFI?")?;
            status::set_loader_entry(&v, false, &id)?;
            println!("default: {id}");
        }
        BootCommand::Oneshot { id } => {
            let v =
                vars.context("no efivarfs (/sys/firmware/efi/efivars): not booted with UEFI?")?;
            status::set_loader_entry(&v, true, &id)?;
            println!("next boot only: {id}");
        }
    }
    Ok(())
}
