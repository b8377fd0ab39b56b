//! Managed resources: one module per resource type, and the few plan rules they share.

pub mod alb;
pub mod ec2_stack;
pub mod persistent_volume;

use std::collections::BTreeMap;

use crate::aws::AwsClients;
use crate::framework::decode::decode;
use crate::framework::value::Value;

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
