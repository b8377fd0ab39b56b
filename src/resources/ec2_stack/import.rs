//! Importing a `dify_ec2_stack` by stack name or by instance ids: the configuration-only values come from the launch
//! template (or the first instance), the target groups from every group's registrations.

use std::collections::BTreeSet;

use crate::aws::{secrets, tags, AwsClients, OpExt};
use crate::boot;
use crate::framework::private::Private;
use crate::framework::value::Value;
use crate::framework::{Ctx, Diagnostics, ResourceState};
use crate::object;

use super::observe::{observe, stack_state};
use super::template::read_template;
use super::{identity, shared_secret, STACK_TAG, SUBNETS_TAG};
use crate::boot::policy;

pub async fn import(ctx: &Ctx, id: &str, identity_value: Option<&Value>, diags: &mut Diagnostics) -> Option<ResourceState> {
    let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
    let id = identity_value.and_then(|i| i.get("name").as_str()).unwrap_or(id).trim().to_string();
    let (name_hint, ids): (String, Vec<String>) = if id.starts_with("i-") {
        (String::new(), id.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
    } else {
        (id.clone(), vec![])
    };
    let o = match observe(aws, &name_hint, &ids, None, None, false).await {
        Ok(o) => o,
        Err(e) => {
            diags.error(format!("Error importing EC2 stack ({id})"), e);
            return None;
        }
    };
    if o.instances.is_empty() {
        diags.error(format!("Cannot import EC2 stack {id:?}"), "no instances found: give the stack name (its instances carry the tag dify:stack = name) or a comma-separated list of instance ids (i-aaa,i-bbb).");
        return None;
    }
    let count = o.instances.len();
    let name = if !name_hint.is_empty() {
        name_hint
    } else {
        let first = o.instances.values().next().map(|i| tags::from_ec2(i.tags())).unwrap_or_default();
        let n = first.get(STACK_TAG).or_else(|| first.get(tags::NAME)).cloned().unwrap_or_else(|| "dify".into());
        if count > 1 {
            n.strip_suffix("-1").map(str::to_string).unwrap_or(n)
        } else {
            n
        }
    };
    let mut subnets: Vec<String> = Vec::new();
    for i in o.instances.values() {
        if let Some(s) = i.subnet_id() {
            if !subnets.iter().any(|x| x == s) {
                subnets.push(s.to_string());
            }
        }
    }
    let first = o.instances.values().next();
    let template = match &o.launch_template_id {
        Some(lt) => read_template(aws, lt).await.unwrap_or_default(),
        None => None,
    };
    let profile = template
        .as_ref()
        .and_then(|t| t.profile.clone())
        .or_else(|| first.and_then(|i| i.iam_instance_profile()).and_then(|p| p.arn()).and_then(|arn| arn.rsplit('/').next()).map(str::to_string))
        .map(Value::String)
        .unwrap_or(Value::Null);
    let key = template.as_ref().and_then(|t| t.key.clone()).or_else(|| first.and_then(|i| i.key_name()).map(str::to_string)).map(Value::String).unwrap_or(Value::Null);
    let root_size = template.as_ref().map(|t| t.root_size).filter(|s| *s > 0).unwrap_or(30);
    let user_data = template.as_ref().and_then(|t| t.user_data.clone()).unwrap_or_else(|| boot::render(&boot::DifyConfig::default(), 80, None));
    if let Some(recorded) = o.launch_template_tags.get(SUBNETS_TAG) {
        subnets = recorded.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
    }
    let instance_ids: Vec<String> = o.instances.values().filter_map(|i| i.instance_id().map(str::to_string)).collect();
    let target_groups = match registered_target_groups(aws, &instance_ids).await {
        Ok(t) => t,
        Err(e) => {
            diags.error(format!("Error importing EC2 stack ({id})"), e);
            return None;
        }
    };
    // A multi-instance stack's shared secret, found by its name and ownership tag.
    let shared_secret_arn = if count > 1 {
        match shared_secret::live_arn(aws, &name).await {
            Ok(arn) => arn.map(Value::String).unwrap_or(Value::Null),
            Err(e) => {
                diags.error(format!("Error importing EC2 stack ({id})"), e);
                return None;
            }
        }
    } else {
        Value::Null
    };
    let base = object! {
        "name" => Value::string(&name),
        "subnet_ids" => Value::List(subnets.iter().map(Value::string).collect()),
        "instance_count" => Value::int(count as i64),
        "root_volume_size_gb" => Value::int(root_size),
        "app_port" => Value::int(80),
        "snapshot_before_replace" => Value::Bool(true),
        "snapshots_to_keep" => Value::int(super::snapshot::DEFAULT_SNAPSHOTS_TO_KEEP),
        "iam_instance_profile" => profile,
        "key_name" => key,
        "target_group_arns" => if target_groups.is_empty() { Value::Null } else { Value::Set(target_groups.iter().map(Value::string).collect()) },
        "user_data_sha256" => Value::String(boot::sha256_hex(&user_data)),
        "rendered_user_data" => Value::String(user_data),
        "shared_secret_recovery_days" => Value::int(secrets::RECOVERY_WINDOW_DAYS),
        "shared_secret_arn" => shared_secret_arn,
        "instance_policy_json" => Value::String(policy::render(&policy::PolicyInputs::of_stack(&name, &aws.region, count as i64, &boot::DifyConfig::default()), crate::aws::partition(&aws.region))),
    };
    Some(ResourceState { state: stack_state(&base, &o, aws), private: Private::default(), identity: Some(identity(&name)) })
}

/// The target groups any of `instances` is registered with (import only: it reads every target group's health).
async fn registered_target_groups(aws: &AwsClients, instances: &[String]) -> Result<BTreeSet<String>, String> {
    let mut found = BTreeSet::new();
    let mut marker = None;
    loop {
        let page = aws.elbv2.describe_target_groups().set_marker(marker).send().await.op("ELBv2 DescribeTargetGroups", "")?;
        for tg in page.target_groups() {
            let Some(arn) = tg.target_group_arn() else { continue };
            let health = aws.elbv2.describe_target_health().target_group_arn(arn).send().await.op("ELBv2 DescribeTargetHealth", "")?;
            if health.target_health_descriptions().iter().any(|d| d.target().and_then(|t| t.id()).is_some_and(|id| instances.iter().any(|i| i == id))) {
                found.insert(arn.to_string());
            }
        }
        marker = page.next_marker().map(str::to_string);
        if marker.is_none() {
            return Ok(found);
        }
    }
}
