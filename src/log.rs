//! Logging in the hclog JSON line format Terraform reads from a plugin's stderr (`TF_LOG_PROVIDER` / `TF_LOG`).
//!
//! stdout belongs to the go-plugin handshake line alone; everything here goes to stderr.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::SystemTime;

use serde_json::{Map, Value as Json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Trace = 1,
    Debug = 2,
    Info = 3,
    Warn = 4,
    Error = 5,
    Off = 6,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Off => "off",
        }
    }

    /// Parses a `TF_LOG` value; `JSON` means trace, as in Terraform.
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_uppercase().as_str() {
            "TRACE" | "JSON" => Some(Level::Trace),
            "DEBUG" => Some(Level::Debug),
            "INFO" => Some(Level::Info),
            "WARN" => Some(Level::Warn),
            "ERROR" => Some(Level::Error),
            "OFF" => Some(Level::Off),
            _ => None,
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);

/// Sets the level from `TF_LOG_PROVIDER`, then `TF_LOG`, else `fallback`.
pub fn init_from_env(fallback: Level) {
    let level = ["TF_LOG_PROVIDER", "TF_LOG"]
        .iter()
        .find_map(|k| std::env::var(k).ok().and_then(|v| Level::parse(&v)))
        .unwrap_or(fallback);
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed) && level != Level::Off
}

/// Formats one hclog JSON line (without the newline).
pub fn format_line(level: Level, message: &str, fields: &[(&str, Json)]) -> String {
    let mut obj = Map::new();
    obj.insert("@level".into(), level.name().into());
    obj.insert("@message".into(), message.into());
    obj.insert("@module".into(), "provider.dify".into());
    obj.insert("@timestamp".into(), humantime::format_rfc3339_micros(SystemTime::now()).to_string().into());
    for (k, v) in fields {
        obj.insert((*k).to_string(), v.clone());
    }
    Json::Object(obj).to_string()
}

pub fn emit(level: Level, message: &str, fields: &[(&str, Json)]) {
    #[cfg(test)]
    capture::record(level, message, fields);
    if !enabled(level) {
        return;
    }
    let mut line = format_line(level, message, fields);
    line.push('\n');
    // One write per line so concurrent lines never interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Unit tests' view of the lines this thread logs, at every level whatever `TF_LOG` says: a test proves that a
/// line is written without turning logging on for the tests running beside it.
#[cfg(test)]
mod capture {
    use std::cell::RefCell;

    thread_local! {
        static LINES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    }

    pub(super) fn record(level: super::Level, message: &str, fields: &[(&str, super::Json)]) {
        LINES.with(|l| {
            if let Some(lines) = l.borrow_mut().as_mut() {
                lines.push(super::format_line(level, message, fields));
            }
        });
    }

    /// Starts recording this thread's lines.
    pub fn capture_start() {
        LINES.with(|l| *l.borrow_mut() = Some(Vec::new()));
    }

    /// The lines recorded since `capture_start`; stops recording.
    pub fn capture_take() -> Vec<String> {
        LINES.with(|l| l.borrow_mut().take().unwrap_or_default())
    }
}

#[cfg(test)]
pub use capture::{capture_start, capture_take};

pub fn trace(message: &str, fields: &[(&str, Json)]) {
    emit(Level::Trace, message, fields)
}
pub fn debug(message: &str, fields: &[(&str, Json)]) {
    emit(Level::Debug, message, fields)
}
pub fn info(message: &str, fields: &[(&str, Json)]) {
    emit(Level::Info, message, fields)
}
pub fn warn(message: &str, fields: &[(&str, Json)]) {
    emit(Level::Warn, message, fields)
}
pub fn error(message: &str, fields: &[(&str, Json)]) {
    emit(Level::Error, message, fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_hclog_json_with_fields() {
        let line = format_line(Level::Debug, "AWS call", &[("aws.operation", "DescribeVpcs".into())]);
        let parsed: Json = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["@level"], "debug");
        assert_eq!(parsed["@message"], "AWS call");
        assert_eq!(parsed["aws.operation"], "DescribeVpcs");
        assert!(parsed["@timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(Level::parse("json"), Some(Level::Trace));
    }
}
