//! State upgrades: a stored state (raw JSON, as Terraform keeps it in terraform.tfstate) written at an older schema
//! version, carried through the resource's upgraders one version at a time, then read with the current schema.
//!
//! How to change a resource's schema incompatibly (rename, retype, restructure): raise its `Schema::version`, add a
//! `StateUpgrader { from_version: <old version>, .. }` to its `state_upgraders`, and check in a new golden state
//! directory (see docs/design.md, "State compatibility"). Removing an attribute needs no upgrader: attributes the
//! current schema no longer has are dropped here, each with a DEBUG log line.

use serde_json::Value as Json;

use super::diag::Diagnostic;
use super::value::{Type, Value};
use crate::log;

/// Rewrites raw JSON state of schema version `from_version` into version `from_version + 1`. Sees the whole object
/// the previous step left; returns an error message when the state cannot be carried over.
pub type UpgradeFn = fn(Json) -> Result<Json, String>;

/// One step of a resource's schema history.
#[derive(Clone, Copy)]
pub struct StateUpgrader {
    pub from_version: i64,
    pub upgrade: UpgradeFn,
}

/// The versions below `current` that no upgrader starts from: a resource must have none.
pub fn missing_upgraders(current: i64, upgraders: &[StateUpgrader]) -> Vec<i64> {
    (0..current).filter(|v| !upgraders.iter().any(|u| u.from_version == *v)).collect()
}

/// Upgrades a stored state of `type_name` from `prior_version` to the schema version `current`, then decodes it as
/// `ty`. An empty `raw` is a null state.
pub fn upgrade_state(type_name: &str, current: i64, ty: &Type, upgraders: &[StateUpgrader], prior_version: i64, raw: &[u8]) -> Result<Value, Diagnostic> {
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    let mut json = parse(raw)?;
    if prior_version > current {
        return Err(from_the_future(type_name, "schema", prior_version, current));
    }
    for version in prior_version.max(0)..current {
        let step = upgraders.iter().find(|u| u.from_version == version).ok_or_else(|| {
            Diagnostic::error(
                format!("Cannot upgrade the state of {type_name}"),
                format!("the state has schema version {version}, and this provider has no upgrader from it to version {} (a provider bug: please report it).", version + 1),
            )
        })?;
        json = (step.upgrade)(json).map_err(|e| {
            Diagnostic::error(format!("Cannot upgrade the state of {type_name}"), format!("upgrading it from schema version {version} to {}: {e}", version + 1))
        })?;
    }
    decode_stored(type_name, ty, json)
}

/// Reads a stored identity (UpgradeResourceIdentity): no upgraders yet, but the same refusal of a newer version and
/// the same dropping of attributes the identity schema no longer has.
pub fn upgrade_identity(type_name: &str, current: i64, ty: &Type, prior_version: i64, raw: &[u8]) -> Result<Value, Diagnostic> {
    if prior_version > current {
        return Err(from_the_future(type_name, "identity schema", prior_version, current));
    }
    decode_stored(type_name, ty, parse(raw)?)
}

fn parse(raw: &[u8]) -> Result<Json, Diagnostic> {
    serde_json::from_slice(raw).map_err(|e| Diagnostic::error("Invalid stored state", format!("the state is not valid JSON: {e}")))
}

fn from_the_future(type_name: &str, what: &str, prior: i64, current: i64) -> Diagnostic {
    Diagnostic::error(
        format!("The state of {type_name} was written by a newer provider"),
        format!(
            "it has {what} version {prior}, and this provider version knows {type_name} up to {what} version {current}. Use the provider version that wrote the state, or a later one; a downgrade cannot read it."
        ),
    )
}

/// Drops what the current type no longer has, then decodes.
fn decode_stored(type_name: &str, ty: &Type, mut json: Json) -> Result<Value, Diagnostic> {
    for path in drop_unknown_attributes(&mut json, ty, "") {
        log::debug("dropping a stored attribute the current schema no longer has", &[("tf_resource_type", type_name.into()), ("attribute", path.into())]);
    }
    Value::from_json(&json, ty).map_err(|e| Diagnostic::error("Invalid stored state", format!("the state of {type_name} does not fit its current schema: {e}")))
}

/// Removes, at every depth, object attributes `ty` does not have; returns their paths (`listener[0].old`).
fn drop_unknown_attributes(json: &mut Json, ty: &Type, path: &str) -> Vec<String> {
    let mut dropped = Vec::new();
    match (json, ty) {
        (Json::Object(obj), Type::Object(attrs)) => {
            obj.retain(|k, _| {
                let keep = attrs.contains_key(k);
                if !keep {
                    dropped.push(join(path, k));
                }
                keep
            });
            for (k, v) in obj.iter_mut() {
                dropped.extend(drop_unknown_attributes(v, &attrs[k], &join(path, k)));
            }
        }
        (Json::Array(items), Type::List(t) | Type::Set(t)) => {
            for (i, item) in items.iter_mut().enumerate() {
                dropped.extend(drop_unknown_attributes(item, t, &format!("{path}[{i}]")));
            }
        }
        (Json::Object(entries), Type::Map(t)) => {
            for (k, v) in entries.iter_mut() {
                dropped.extend(drop_unknown_attributes(v, t, &format!("{path}[{k:?}]")));
            }
        }
        _ => {}
    }
    dropped
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    /// Version 2 of a made-up resource: `size` (was `size_gb` in 0), `zone`, `tags` and a `listener` block list.
    fn current() -> Type {
        let listener = Type::Object(BTreeMap::from([("port".to_string(), Type::Number)]));
        Type::Object(BTreeMap::from([
            ("id".to_string(), Type::String),
            ("size".to_string(), Type::Number),
            ("zone".to_string(), Type::String),
            ("tags".to_string(), Type::map(Type::String)),
            ("listener".to_string(), Type::list(listener)),
        ]))
    }

    fn rename_size(mut json: Json) -> Result<Json, String> {
        let obj = json.as_object_mut().ok_or("not an object")?;
        let size = obj.remove("size_gb").unwrap_or(Json::Null);
        obj.insert("size".into(), size);
        Ok(json)
    }

    fn default_zone(mut json: Json) -> Result<Json, String> {
        json["zone"] = json!("a");
        Ok(json)
    }

    fn refuse(_: Json) -> Result<Json, String> {
        Err("size_gb is not a number".into())
    }

    const CHAIN: [StateUpgrader; 2] = [StateUpgrader { from_version: 1, upgrade: default_zone }, StateUpgrader { from_version: 0, upgrade: rename_size }];

    fn upgrade(prior: i64, state: Json, upgraders: &[StateUpgrader]) -> Result<Value, Diagnostic> {
        upgrade_state("dify_thing", 2, &current(), upgraders, prior, state.to_string().as_bytes())
    }

    #[test]
    fn a_version_0_state_runs_every_upgrader_in_order() {
        let v = upgrade(0, json!({"id": "t-1", "size_gb": 20}), &CHAIN).unwrap();
        assert_eq!(v.get("size").as_i64(), Some(20));
        assert_eq!(v.get("zone").as_str(), Some("a"));
        assert_eq!(v.get("id").as_str(), Some("t-1"));
        assert!(v.get("tags").is_null() && v.get("listener").is_null(), "attributes the state never had come up null");
    }

    #[test]
    fn a_state_part_way_up_runs_only_the_later_upgraders() {
        let v = upgrade(1, json!({"id": "t-1", "size": 30, "zone": null}), &CHAIN).unwrap();
        assert_eq!((v.get("size").as_i64(), v.get("zone").as_str()), (Some(30), Some("a")));
        let v = upgrade(2, json!({"id": "t-1", "size": 30, "zone": "b"}), &[]).unwrap();
        assert_eq!(v.get("zone").as_str(), Some("b"), "a current state passes through untouched");
    }

    #[test]
    fn a_state_from_a_newer_schema_is_refused_naming_both_versions() {
        let d = upgrade(3, json!({"id": "t-1"}), &CHAIN).unwrap_err();
        let text = format!("{} {}", d.summary, d.detail);
        assert!(text.contains("dify_thing") && text.contains("version 3") && text.contains("version 2"), "{text}");
        let d = upgrade_identity("dify_thing", 0, &current(), 1, b"{}").unwrap_err();
        assert!(d.detail.contains("identity schema version 1"), "{}", d.detail);
    }

    #[test]
    fn a_missing_or_failing_upgrader_is_an_error_naming_the_step() {
        let d = upgrade(0, json!({"id": "t-1"}), &CHAIN[..1]).unwrap_err();
        assert!(d.detail.contains("no upgrader from it to version 1"), "{}", d.detail);
        let d = upgrade(1, json!({"id": "t-1"}), &[StateUpgrader { from_version: 1, upgrade: refuse }]).unwrap_err();
        assert!(d.detail.contains("from schema version 1 to 2: size_gb is not a number"), "{}", d.detail);
        assert_eq!(missing_upgraders(2, &CHAIN[..1]), vec![0]);
        assert!(missing_upgraders(2, &CHAIN).is_empty());
    }

    #[test]
    fn attributes_the_schema_no_longer_has_are_dropped_at_every_depth_with_a_debug_line() {
        let state = json!({"id": "t-1", "size": 1, "zone": "a", "legacy": true, "tags": {"k": "v"}, "listener": [{"port": 80, "protocol": "HTTP"}]});
        log::capture_start();
        let v = upgrade(2, state, &[]).unwrap();
        let lines = log::capture_take();
        assert_eq!(v.get("tags").entries().map(|m| m.len()), Some(1), "map keys are data, not attributes: kept");
        assert_eq!(v.get("listener").elements().unwrap()[0].get("port").as_i64(), Some(80));
        for path in ["legacy", "listener[0].protocol"] {
            let line = lines.iter().find(|l| l.contains(&format!("\"attribute\":\"{path}\""))).unwrap_or_else(|| panic!("no log line for {path} in {lines:?}"));
            assert!(line.contains("\"@level\":\"debug\"") && line.contains("\"tf_resource_type\":\"dify_thing\""), "{line}");
        }
    }

    #[test]
    fn an_empty_stored_state_is_null() {
        assert!(upgrade_state("dify_thing", 2, &current(), &CHAIN, 0, b"").unwrap().is_null());
    }
}
