//! The `timeouts { create = "30m" ... }` block every long-running resource offers, and duration parsing.

use std::sync::Arc;
use std::time::Duration;

use super::diag::{AttrPath, Diagnostics};
use super::schema::{Attribute, Block, NestedBlock};
use super::value::Value;

pub const BLOCK_NAME: &str = "timeouts";

/// Parses a Terraform-style duration: "10m", "1h30m", "45s".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{s:?} is not a duration such as \"10m\" or \"1h30m\" ({e})"))
}

/// A `timeouts` block with one optional duration attribute per operation named.
pub fn block(operations: &[&str]) -> NestedBlock {
    let mut b = Block::new().description("How long each operation may take before it fails.");
    for op in operations {
        b = b.attr(
            Attribute::string(op)
                .optional()
                .description(&format!("Time limit for {op}, as a duration such as \"30m\".", ))
                .validate(Arc::new(|v: &Value, p: &AttrPath, d: &mut Diagnostics| {
                    if let Some(s) = v.as_str() {
                        if let Err(e) = parse_duration(s) {
                            d.error_at(p.clone(), format!("Invalid duration for `{p}`"), e);
                        }
                    }
                })),
        );
    }
    NestedBlock::single(BLOCK_NAME, b)
}

/// The configured timeout for `operation` in a resource value, or `default`.
pub fn get(value: &Value, operation: &str, default: Duration) -> Duration {
    super::schema::single_block(value, BLOCK_NAME)
        .get(operation)
        .as_str()
        .and_then(|s| parse_duration(s).ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object;

    #[test]
    fn reads_configured_timeouts_and_falls_back_to_the_default() {
        let v = object! {"timeouts" => object!{"create" => Value::string("1h30m"), "delete" => Value::Null}};
        assert_eq!(get(&v, "create", Duration::from_secs(1)), Duration::from_secs(5400));
        assert_eq!(get(&v, "delete", Duration::from_secs(7)), Duration::from_secs(7));
        assert!(parse_duration("ten minutes").is_err());
    }
}
