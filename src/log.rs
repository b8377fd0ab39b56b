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
    if !enabled(level) {
        return;
    }
    let mut line = format_line(level, message, fields);
    line.push('\n');
    // One write per line so concurrent lines never interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

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
