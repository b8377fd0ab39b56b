//! The Terraform state of a `dify_persistent_volume`, built from what AWS reports about the volume.

use aws_sdk_ec2::types::Volume;

use crate::aws::{tags, AwsClients};
use crate::framework::private::Private;
use crate::framework::timeouts;
use crate::framework::value::Value;
use crate::framework::{Diagnostics, ResourceState};
use crate::resources::state_tags;

pub(super) fn identity(id: &str) -> Value {
    crate::object! {"id" => Value::string(id)}
}

/// State from what AWS reports, keeping from `base` what only Terraform knows (source image, final_snapshot,
/// timeouts) and the configured spelling of `kms_key_id`.
pub(super) fn volume_state(base: &Value, v: &Volume, aws: &AwsClients, _diags: &mut Diagnostics) -> ResourceState {
    let id = v.volume_id().unwrap_or_default().to_string();
    let all = tags::from_ec2(v.tags());
    let visible = tags::user_visible(&all);
    let (own_tags, tags_all) = state_tags(base, &visible, aws);
    let owner = v.owner_id().map(str::to_string).or_else(|| aws.account_id.clone()).unwrap_or_default();
    let arn = v.volume_arn().map(str::to_string).unwrap_or_else(|| format!("arn:{}:ec2:{}:{owner}:volume/{id}", crate::aws::partition(&aws.region), aws.region));
    let opt_num = |n: Option<i32>| n.map(|n| Value::int(n as i64)).unwrap_or(Value::Null);
    let kms = match base.get("kms_key_id") {
        Value::String(k) => Value::string(k),
        _ => v.kms_key_id().map(Value::string).unwrap_or(Value::Null),
    };
    let mut state = crate::object! {
        "id" => Value::string(&id),
        "arn" => Value::String(arn),
        "name" => all.get(tags::NAME).map(Value::string).unwrap_or(Value::Null),
        "availability_zone" => v.availability_zone().map(Value::string).unwrap_or(Value::Null),
        "size_gb" => opt_num(v.size()),
        "type" => v.volume_type().map(|t| Value::string(t.as_str())).unwrap_or(Value::Null),
        "iops" => opt_num(v.iops()),
        "throughput" => opt_num(v.throughput()),
        "encrypted" => Value::Bool(v.encrypted().unwrap_or(false)),
        "kms_key_id" => kms,
        "snapshot_id" => v.snapshot_id().filter(|s| !s.is_empty()).map(Value::string).unwrap_or(Value::Null),
        "source_image" => base.get("source_image").clone(),
        "source_image_sha256" => base.get("source_image_sha256").clone(),
        "final_snapshot" => base.get("final_snapshot").clone(),
        // Refreshed from DLM by the caller when there is a policy (`backup::read`).
        "backup" => base.get("backup").clone(),
        "tags" => own_tags,
        "tags_all" => tags_all,
        "timeouts" => base.get(timeouts::BLOCK_NAME).clone(),
    };
    if state.get("final_snapshot").is_null() || state.get("final_snapshot").is_unknown() {
        state.set("final_snapshot", Value::Bool(true));
    }
    ResourceState { state, private: Private::default(), identity: Some(identity(&id)) }
}
