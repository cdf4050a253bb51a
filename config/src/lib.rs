//! Configuration loading shared by `tessera` and `osimage`.
//!
//! Every config in the project is TOML read through [`load`] or [`parse`], so a bad
//! value is always reported the same way: the file, the line and column, the dotted
//! key path, and what was wrong. The schemas themselves live next to the code that
//! consumes them; this crate owns the reporting so it cannot drift between tools.

use std::fmt;
pub mod compositor;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A config that could not be read or did not match its schema.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: {message}")]
    Invalid { location: Location, message: String },
}

impl ConfigError {
    /// Where the error is, when it is about the file's contents.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Invalid { location, .. } => Some(location),
            ConfigError::Read { .. } => None,
        }
    }
}

/// File, 1-based line and column, and the dotted key path of a config error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted path such as `output.DP-1.scale`; empty for a syntax error before any key.
    pub key: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        Ok(())
    }
}

/// Reads and parses a TOML file into `T`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses TOML text into `T`; `origin` names the file in errors.
pub fn parse<T: DeserializeOwned>(text: &str, origin: &Path) -> Result<T, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let key = err.path().to_string();
        let inner = err.into_inner();
        let (line, column) = inner
            .span()
            .map(|span| line_col(text, span.start))
            .unwrap_or((1, 1));
        ConfigError::Invalid {
            location: Location {
                file: origin.to_owned(),
                line,
                column,
                // serde_path_to_error writes "." for the document root.
                key: if key == "." { String::new() } else { key },
            },
            message: inner.message().trim().to_owned(),
        }
    })
}

/// Where `key` is written in `text`, for an error found after parsing (a rule
/// across keys rather than a bad value). `key` is a dotted path as errors print it,
/// `partition[1].SizeMinBytes`; where part of it is absent from the text (a key
/// left at its default), the location is that of the deepest part present, so the
/// error still points at the table that lacks it.
pub fn locate(text: &str, origin: &Path, key: &str) -> Location {
    let offset = toml_edit::ImDocument::parse(text)
        .ok()
        .and_then(|doc| key_offset(doc.as_item(), key));
    let (line, column) = offset.map_or((1, 1), |o| line_col(text, o));
    Location {
        file: origin.to_owned(),
        line,
        column,
        key: key.to_owned(),
    }
}

/// One step down a parsed document: arrays of tables hold tables, arrays hold values.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a toml_edit::Item),
    Table(&'a toml_edit::Table),
    Value(&'a toml_edit::Value),
}

/// The byte offset of the deepest part of `key` present under `root`.
fn key_offset(root: &toml_edit::Item, key: &str) -> Option<usize> {
    let mut node = Node::Item(root);
    let mut found = None;
    for part in key_parts(key) {
        let next = match part {
            KeyPart::Name(name) => {
                let table: Option<&dyn toml_edit::TableLike> = match node {
                    Node::Item(i) => i.as_table_like(),
                    Node::Table(t) => Some(t),
                    Node::Value(v) => v.as_inline_table().map(|t| t as _),
                };
                table.and_then(|t| t.get_key_value(name)).map(|(k, v)| {
                    found = k.span().map(|s| s.start).or(found);
                    Node::Item(v)
                })
            }
            KeyPart::Index(i) => {
                let next = match node {
                    Node::Item(item) => match item.as_array_of_tables() {
                        Some(aot) => aot.get(i).map(Node::Table),
                        None => item.as_array().and_then(|a| a.get(i)).map(Node::Value),
                    },
                    Node::Value(v) => v.as_array().and_then(|a| a.get(i)).map(Node::Value),
                    Node::Table(_) => None,
                };
                let span = match next {
                    Some(Node::Table(t)) => t.span(),
                    Some(Node::Value(v)) => v.span(),
                    _ => None,
                };
                found = span.map(|s| s.start).or(found);
                next
            }
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    found
}

enum KeyPart<'a> {
    Name(&'a str),
    Index(usize),
}

/// `a.b[2].c` as `a`, `b`, 2, `c`.
fn key_parts(key: &str) -> Vec<KeyPart<'_>> {
    let mut parts = Vec::new();
    for dotted in key.split('.') {
        let mut rest = dotted;
        if let Some(open) = rest.find('[') {
            parts.push(KeyPart::Name(&rest[..open]));
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                if let Ok(i) = rest[1..close].parse() {
                    parts.push(KeyPart::Index(i));
                }
                rest = &rest[close + 1..];
            }
        } else if !rest.is_empty() {
            parts.push(KeyPart::Name(rest));
        }
    }
    parts
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[allow(dead_code)]
        name: String,
        #[serde(default)]
        output: Vec<Output>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Output {
        #[allow(dead_code)]
        scale: f64,
    }

    fn err(text: &str) -> ConfigError {
        parse::<Sample>(text, Path::new("/etc/x.toml")).unwrap_err()
    }

    #[test]
    fn wrong_type_names_file_line_and_key() {
        let e = err("name = \"a\"\n\n[[output]]\nscale = \"big\"\n");
        let loc = e.location().unwrap();
        assert_eq!(loc.file, Path::new("/etc/x.toml"));
        assert_eq!(loc.line, 4);
        assert_eq!(loc.key, "output[0].scale");
        let shown = e.to_string();
        assert!(
            shown.starts_with("/etc/x.toml:4:9: key `output[0].scale`"),
            "{shown}"
        );
    }

    #[test]
    fn keys_are_located_after_parsing_and_a_missing_one_at_its_table() {
        let text = "name = \"a\"\n\n[[output]]\nscale = 1.0\n\n[[output]]\n  scale = 2.0\n";
        let at = |key: &str| {
            let l = locate(text, Path::new("x.toml"), key);
            assert_eq!(l.key, key);
            (l.line, l.column)
        };
        assert_eq!(at("name"), (1, 1));
        assert_eq!(at("output[1].scale"), (7, 3));
        assert_eq!(at("output[0].scale"), (4, 1));
        // Absent: the table that would hold it, then the file's start.
        assert_eq!(at("output[1].colour"), (6, 1));
        assert_eq!(at("nothing"), (1, 1));
        let shown = locate(text, Path::new("x.toml"), "output[1].scale").to_string();
        assert_eq!(shown, "x.toml:7:3: key `output[1].scale`");
    }

    #[test]
    fn unknown_key_is_reported_with_its_line() {
        let e = err("name = \"a\"\ncolour = 3\n");
        let loc = e.location().unwrap();
        assert_eq!(loc.line, 2);
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = err("name = \"a\"\nscale = = 2\n");
        assert_eq!(e.location().unwrap().line, 2);
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = load::<Sample>(Path::new("/nonexistent/tessera.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/tessera.toml: cannot read")
        );
    }

    #[test]
    fn valid_config_parses() {
        let s: Sample = parse("name = \"a\"\n[[output]]\nscale = 1.5\n", Path::new("x")).unwrap();
        assert_eq!(s.output.len(), 1);
    }
}
