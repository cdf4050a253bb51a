//! A minimal QMP client: one command at a time, asynchronous events skipped.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Result, RigError, io_err};

#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects and negotiates capabilities.
    pub fn connect(socket: &Path) -> Result<Qmp> {
        let stream = UnixStream::connect(socket)
            .map_err(io_err(format!("connect QMP {}", socket.display())))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(io_err("QMP timeout"))?;
        let writer = stream.try_clone().map_err(io_err("QMP clone"))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(RigError::Failed(format!(
                "unexpected QMP greeting {greeting}"
            )));
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    /// Runs a command and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let msg = json!({ "execute": command, "arguments": arguments });
        let mut line = msg.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(io_err(format!("QMP send {command}")))?;
        loop {
            let reply = self.read_message()?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                return Err(RigError::Failed(format!("QMP {command}: {err}")));
            }
        }
    }

    /// Writes what the guest's display shows to `path` as a PNG.
    pub fn screendump(&mut self, path: &Path) -> Result<()> {
        self.execute(
            "screendump",
            json!({ "filename": path.to_string_lossy(), "format": "png" }),
        )
        .map(drop)
    }

    /// Presses QEMU key codes together and lets them go (`["shift", "a"]` is an
    /// `A`): the names are QAPI's `QKeyCode`s.
    pub fn send_key(&mut self, keys: &[&str]) -> Result<()> {
        let keys: Vec<Value> = keys
            .iter()
            .map(|k| json!({ "type": "qcode", "data": k }))
            .collect();
        self.execute("send-key", json!({ "keys": keys })).map(drop)
    }

    /// Types `text` key by key; it knows lower-case letters, digits, space,
    /// `/`, `-`, `.` and `\n`.
    pub fn type_text(&mut self, text: &str) -> Result<()> {
        for c in text.chars() {
            let name =
                qcode(c).ok_or_else(|| RigError::Failed(format!("no QEMU key for {c:?}")))?;
            self.send_key(&[name])?;
        }
        Ok(())
    }

    /// `input-send-event`: pointer events as QAPI's `InputEvent`s, e.g.
    /// `{"type": "abs", "data": {"axis": "x", "value": 16384}}` (0 to 32767
    /// across the screen) or `{"type": "rel", …}`, then a sync.
    pub fn input_events(&mut self, events: Value) -> Result<()> {
        self.execute("input-send-event", json!({ "events": events }))
            .map(drop)
    }

    /// Presses the virtual power button (ACPI), as a user would.
    pub fn powerdown(&mut self) -> Result<()> {
        self.execute("system_powerdown", json!({})).map(drop)
    }

    /// Ends QEMU at once, like pulling the plug.
    pub fn quit(&mut self) -> Result<()> {
        self.execute("quit", json!({})).map(drop)
    }

    fn read_message(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(io_err("QMP receive"))?;
        if n == 0 {
            return Err(RigError::Failed("QMP connection closed".into()));
        }
        serde_json::from_str(&line)
            .map_err(|e| RigError::Failed(format!("bad QMP message {line:?}: {e}")))
    }
}

/// The `QKeyCode` that types `c` on a US layout without modifiers.
fn qcode(c: char) -> Option<&'static str> {
    const LETTERS: [&str; 26] = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
        "s", "t", "u", "v", "w", "x", "y", "z",
    ];
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match c {
        'a'..='z' => Some(LETTERS[c as usize - 'a' as usize]),
        '0'..='9' => Some(DIGITS[c as usize - '0' as usize]),
        ' ' => Some("spc"),
        '/' => Some("slash"),
        '-' => Some("minus"),
        '.' => Some("dot"),
        '\n' => Some("ret"),
        _ => None,
    }
}

/// Width and height of a PNG, from its IHDR chunk.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    Some((w, h))
}

#[cfg(test)]
mod qcode_tests {
    use super::qcode;

    #[test]
    fn a_shell_command_types_with_plain_keys() {
        let keys: Option<Vec<_>> = "touch /tmp/x-1.y\n".chars().map(qcode).collect();
        assert_eq!(
            keys.unwrap(),
            [
                "t", "o", "u", "c", "h", "spc", "slash", "t", "m", "p", "slash", "x", "minus", "1",
                "dot", "y", "ret"
            ]
        );
        assert_eq!(
            qcode('A'),
            None,
            "capitals need shift, which type_text does not press"
        );
    }
}
