//! Managed resources: one module per resource type, and the few plan rules they share.

pub mod alb;
pub mod dns_record;
pub mod ec2_stack;
mod image_hash;
pub mod persistent_volume;

use std::collections::BTreeMap;

use crate::aws::AwsClients;
use crate::framework::decode::decode;
use crate::framework::value::Value;

/// `tags` and `tags_all` for state from an object's user-visible tags: `tags` keeps the keys the configuration
/// (`base`) names plus anything not explained by the provider's `default_tags` (drift shows), and is null when the
/// configuration has no tags and nothing else remains (so an import plans no change).
pub fn state_tags(base: &Value, visible: &BTreeMap<String, String>, aws: &AwsClients) -> (Value, Value) {
    let to_map = |m: &BTreeMap<String, String>| Value::Map(m.iter().map(|(k, v)| (k.clone(), Value::string(v))).collect());
    let configured = base.get("tags").entries();
    let own: BTreeMap<String, String> = visible
        .iter()
        .filter(|(k, v)| configured.is_some_and(|c| c.contains_key(*k)) || aws.default_tags.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let tags = if configured.is_none() && own.is_empty() { Value::Null } else { to_map(&own) };
    (tags, to_map(visible))
}

/// `tags_all` at plan: the configuration's `tags` over the provider's `default_tags`; known whenever both are.
pub fn planned_tags_all(config: &Value, aws: Option<&AwsClients>) -> Value {
    match (config.get("tags"), aws) {
        (t, Some(aws)) if !t.is_unknown() && t.is_wholly_known() => {
            let own: BTreeMap<String, String> = decode(t).unwrap_or_default();
            Value::Map(aws.merged_tags(&own).into_iter().map(|(k, v)| (k, Value::String(v))).collect())
        }
        _ => Value::unknown(),
    }
}
