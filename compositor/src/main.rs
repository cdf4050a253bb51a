use clap::Parser;
use tessera::cli::{Args, Command, MsgCommand, PointerCommand, TouchCommand};
use tessera::ipc::proto::Request;
use tessera::session::StartError;

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: the journal stores a line holding them
        // as a blob that `journalctl` hides and `grep` cannot find.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let code = match &args.command {
        Some(Command::Msg(msg)) => msg_main(msg),
        Some(Command::CheckConfig { file, json }) => check_config(file, *json),
        Some(Command::DefaultConfig) => {
            print!("{}", tessera_config::compositor::DEFAULT_TOML);
            0
        }
        None => match tessera::session::run(&args) {
            Ok(()) => 0,
            Err(err) => {
                eprintln!("tessera: {err}");
                match err {
                    StartError::Config(_) => tessera::EXIT_CONFIG,
                    StartError::Unavailable(_) => tessera::EXIT_UNAVAILABLE,
                    StartError::Other(_) => 1,
                }
            }
        },
    };
    std::process::exit(code);
}

fn check_config(file: &std::path::Path, json: bool) -> i32 {
    let result = tessera::config::check(file);
    if json {
        let v = match &result {
            Ok(_) => serde_json::json!({"ok": true, "file": file}),
            Err(e) => serde_json::json!({"ok": false, "file": file, "error": format!("{e:#}")}),
        };
        println!("{v}");
    } else {
        match &result {
            Ok(_) => println!("{}: ok", file.display()),
            Err(e) => eprintln!("tessera: {e:#}"),
        }
    }
    if result.is_ok() {
        0
    } else {
        tessera::EXIT_CONFIG
    }
}

fn msg_main(msg: &tessera::cli::MsgArgs) -> i32 {
    let Some(socket) = tessera::ipc::client::socket_path(msg.socket.as_deref()) else {
        eprintln!(
            "tessera msg: no socket: set TESSERA_SOCKET or WAYLAND_DISPLAY, or pass --socket"
        );
        return 2;
    };
    let request = match &msg.request {
        MsgCommand::Version => Request::Version,
        MsgCommand::Outputs => Request::Outputs,
        MsgCommand::Windows => Request::Windows,
        MsgCommand::Clients => Request::Clients,
        MsgCommand::Planes => Request::Planes,
        MsgCommand::Inputs => Request::Inputs,
        MsgCommand::Focus { id } => Request::Focus { id: *id },
        MsgCommand::Screenshot {
            output,
            cursor,
            file,
        } => {
            let path = std::path::absolute(file).unwrap_or_else(|_| file.clone());
            Request::Screenshot {
                output: output.clone(),
                path: path.to_string_lossy().into_owned(),
                cursor: *cursor,
            }
        }
        MsgCommand::Type { text } => Request::Type {
            text: text.replace("\\n", "\n").replace("\\t", "\t"),
        },
        MsgCommand::Key { combo } => Request::Key {
            combo: combo.clone(),
        },
        MsgCommand::Pointer(PointerCommand::Move { x, y }) => Request::PointerMove { x: *x, y: *y },
        MsgCommand::Pointer(PointerCommand::Click { button }) => {
            Request::PointerClick { button: *button }
        }
        MsgCommand::Touch(TouchCommand::Tap { x, y }) => Request::TouchTap { x: *x, y: *y },
        MsgCommand::Touch(TouchCommand::Down { x, y, slot }) => Request::TouchDown {
            slot: *slot,
            x: *x,
            y: *y,
        },
        MsgCommand::Touch(TouchCommand::Move { x, y, slot }) => Request::TouchMove {
            slot: *slot,
            x: *x,
            y: *y,
        },
        MsgCommand::Touch(TouchCommand::Up { slot }) => Request::TouchUp { slot: *slot },
        MsgCommand::Reload => Request::Reload,
        MsgCommand::Quit => Request::Quit,
    };
    match tessera::ipc::client::send(&socket, &request) {
        Ok(answer) => {
            if msg.json {
                println!("{}", serde_json::to_string(&answer).unwrap_or_default());
            } else if let Some(err) = &answer.error {
                eprintln!("tessera msg: {err}");
            } else if let MsgCommand::Planes = msg.request
                && let Ok(report) =
                    serde_json::from_value::<tessera::scanout::PlanesReport>(answer.data.clone())
            {
                print!("{}", report.to_text());
            } else if !answer.data.is_null() {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&answer.data).unwrap_or_default()
                );
            }
            if answer.ok { 0 } else { 1 }
        }
        Err(e) => {
            eprintln!("tessera msg: {e:#}");
            69
        }
    }
}
