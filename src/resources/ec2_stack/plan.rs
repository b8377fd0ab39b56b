//! Planning a `dify_ec2_stack`: `tags_all`, the rendered user data, which computed values the change makes unknown,
//! and the checks only a plan can make (data that would die with its instances, data volumes in their instances'
//! zones, subnets that hand out public IPs or have no way out: `egress`).

use std::collections::BTreeMap;

use crate::aws::{ec2, tags, AwsClients};
use crate::boot;
use crate::framework::decode::decode;
use crate::framework::resource::PlanRequest;
use crate::framework::value::Value;
use crate::framework::{AttrPath, Ctx, Diagnostic, Diagnostics};

use super::super::planned_tags_all;
use super::missing_shared_services;
use crate::boot::policy;

/// Computed attributes that follow the instances.
const INSTANCE_LISTS: &[&str] = &["instance_ids", "private_ips", "availability_zones"];

/// The boot configuration a planned `dify` block (or its absence) asks for; `None` while parts are unknown.
fn planned_boot(planned: &Value) -> Option<boot::DifyConfig> {
    let dify = planned.get("dify");
    if dify.is_null() {
        return Some(boot::DifyConfig::default());
    }
    if !dify.is_wholly_known() {
        return None;
    }
    decode(dify).ok()
}

/// A stack with no data volume and bundled services keeps Dify's data on root volumes that are deleted with their
/// instances: a warning at every plan, and a replacement of running instances refused, unless `allow_data_loss`.
fn check_data_survives(config: &Value, prior: &Value, replacing: bool, diags: &mut Diagnostics) {
    if !config.get("data_volume_ids").is_null() || !config.get("dify").is_wholly_known() || config.get("allow_data_loss").as_bool() == Some(true) {
        return;
    }
    let local = missing_shared_services(config);
    if local.is_empty() {
        return;
    }
    let what = format!("with no data_volume_ids, Dify's bundled services ({}) keep their data on the instances' root volumes, which are deleted with the instances", local.join(", "));
    if replacing && !prior.is_null() {
        diags.error_at(
            AttrPath::root("data_volume_ids"),
            "Replacing the instances would delete Dify's data",
            format!("this change replaces the instances, and {what}: every workspace, app and upload would be lost. Give each instance a dify_persistent_volume in data_volume_ids (its data then moves onto the volume at the next boot), or set allow_data_loss = true if the data is disposable."),
        );
    } else {
        diags.push(Diagnostic::warning("Dify's data dies with its instances", format!("{what}; any later change to `dify` or `ami_id` replaces them. Give each instance a dify_persistent_volume in data_volume_ids, or set allow_data_loss = true to say the data is disposable.")).at(AttrPath::root("data_volume_ids")));
    }
}

pub async fn modify_plan(ctx: &Ctx, plan: &mut PlanRequest<'_>, diags: &mut Diagnostics) {
    let aws = ctx.meta::<AwsClients>().ok();
    let (prior, config) = (plan.prior, plan.config);
    plan.planned.set("tags_all", planned_tags_all(config, aws));
    // The provider's default_tags reach the instances too; `tags` was checked at validate.
    let own = config.get("tags").entries().cloned().unwrap_or_default();
    for key in plan.planned.get("tags_all").entries().into_iter().flat_map(|m| m.keys()).filter(|k| !own.contains_key(*k)) {
        if let Some(problem) = tags::metadata_key_problem(key) {
            diags.push(Diagnostic::error(format!("Invalid key {key:?} in the provider's `default_tags`"), format!("the provider's default_tags put it on the stack's instances: {problem}")).at(AttrPath::root("tags_all").key(key)));
        }
    }
    plan.planned.set("id", plan.planned.get("name").clone());
    if config.get("wait_for_healthy").is_null() {
        let v = match plan.planned.get("target_group_arns") {
            Value::Null => Value::Bool(false),
            Value::Set(items) => Value::Bool(!items.is_empty()),
            _ => Value::unknown(),
        };
        plan.planned.set("wait_for_healthy", v);
    }
    if config.get("iam_instance_profile").is_null() {
        diags.push(Diagnostic::warning("No iam_instance_profile: Session Manager will not reach the instances", "set iam_instance_profile to a profile with the AmazonSSMManagedInstanceCore policy; the stack opens no SSH port.").at(AttrPath::root("iam_instance_profile")));
    }

    let count = plan.planned.get("instance_count").as_i64();
    let configured = plan.planned.clone();
    let changed = |a: &str| prior.get(a) != configured.get(a);
    let name = configured.get("name").as_str().map(str::to_string);
    match (planned_boot(&configured), configured.get("app_port").as_i64(), name, count) {
        (Some(c), Some(app_port), Some(name), Some(count)) => {
            if c.url.as_deref().is_some_and(|u| u.starts_with("http://")) {
                diags.push(Diagnostic::warning("Dify's URL is plain http://", "Dify's login cookies are then not Secure; serve Dify over https:// (a certificate on the dify_alb).").at(AttrPath::root("dify").attr("url")));
            }
            let rendered = boot::render(&c, app_port, super::shared_secret_of(&name, count).as_deref());
            plan.planned.set("user_data_sha256", Value::String(boot::sha256_hex(&rendered)));
            plan.planned.set("rendered_user_data", Value::String(rendered));
            let policy = aws.map(|aws| Value::String(policy::render(&policy::PolicyInputs::of_stack(&name, &aws.region, count, &c), crate::aws::partition(&aws.region)))).unwrap_or_else(Value::unknown);
            plan.planned.set("instance_policy_json", policy);
        }
        _ => {
            plan.planned.set("user_data_sha256", Value::unknown());
            plan.planned.set("rendered_user_data", Value::unknown());
            plan.planned.set("instance_policy_json", Value::unknown());
        }
    }
    // A multi-instance stack keeps its secret's known ARN; without one (a create, a scale-out, a secret deleted
    // outside Terraform) the apply ensures it. A single instance keeps whatever it had.
    let secret = match plan.planned.get("instance_count").as_i64() {
        Some(c) if c > 1 && prior.get("shared_secret_arn").is_null() => Value::unknown(),
        Some(_) => prior.get("shared_secret_arn").clone(),
        None => Value::unknown(),
    };
    plan.planned.set("shared_secret_arn", secret);
    let instances_present = prior.get("instance_ids").elements().map(|e| e.len() as i64);
    // Instances are replaced (one at a time) when the boot configuration or the image changes.
    let replaced = prior.get("user_data_sha256") != plan.planned.get("user_data_sha256") || changed("ami_id");
    let relaid = prior.is_null() || count.is_none() || instances_present != count || changed("instance_count") || replaced;
    check_data_survives(config, prior, replaced && instances_present.unwrap_or(0) > 0, diags);
    for attr in INSTANCE_LISTS {
        let v = if relaid { Value::unknown() } else { prior.get(attr).clone() };
        plan.planned.set(attr, v);
    }
    for attr in ["security_group_id", "launch_template_id"] {
        let v = if prior.get(attr).is_null() { Value::unknown() } else { prior.get(attr).clone() };
        plan.planned.set(attr, v);
    }
    let user_data_changed = prior.get("user_data_sha256") != plan.planned.get("user_data_sha256");
    let template_changed = user_data_changed || ["instance_type", "ami_id", "root_volume_size_gb", "iam_instance_profile", "key_name", "additional_security_group_ids"].iter().any(|a| changed(a));
    // A recreated security group or template (deleted outside Terraform) also makes a new template version.
    let parts_missing = prior.get("security_group_id").is_null() || prior.get("launch_template_id").is_null();
    let v = if prior.is_null() || template_changed || parts_missing || prior.get("launch_template_version").is_null() { Value::unknown() } else { prior.get("launch_template_version").clone() };
    plan.planned.set("launch_template_version", v);

    // Data volumes must be in their instances' zones; subnets that hand out public IPs, or have no way out, get a warning.
    let Some(aws) = aws else { return };
    // A shared secret the apply will have to make: a foreign one of its name is refused now, before any change.
    if plan.planned.get("shared_secret_arn").is_unknown() && plan.planned.get("instance_count").as_i64().is_some_and(|c| c > 1) {
        if let Some(name) = plan.planned.get("name").as_str() {
            if let Err(e) = super::shared_secret::check_ours(aws, name).await {
                return diags.error_at(AttrPath::root("name"), "The stack's shared secret name is taken", e);
            }
        }
    }
    let subnet_ids: Vec<String> = plan.planned.get("subnet_ids").elements().unwrap_or_default().iter().filter_map(|s| s.as_str().map(str::to_string)).collect();
    let volumes: Vec<Option<String>> = plan.planned.get("data_volume_ids").elements().unwrap_or_default().iter().map(|v| v.as_str().map(str::to_string)).collect();
    let subnets_known = !subnet_ids.is_empty() && subnet_ids.len() == plan.planned.get("subnet_ids").elements().map(|e| e.len()).unwrap_or(0);
    if !subnets_known || !(prior.is_null() || changed("subnet_ids") || changed("data_volume_ids")) {
        return;
    }
    let subnets = match ec2::describe_subnets(aws, subnet_ids.clone()).await {
        Ok(s) => s,
        Err(e) => return diags.error_at(AttrPath::root("subnet_ids"), "Checking the subnets", e),
    };
    super::egress::check(aws, &subnets, &configured, diags).await;
    let zone_of: BTreeMap<String, String> = subnets.iter().filter_map(|s| Some((s.subnet_id()?.to_string(), s.availability_zone()?.to_string()))).collect();
    for s in subnets.iter().filter(|s| s.map_public_ip_on_launch() == Some(true)) {
        diags.push(Diagnostic::warning(
            format!("Subnet {} assigns public IPs", s.subnet_id().unwrap_or_default()),
            "the stack's instances never get one (the launch template disables it), but Dify instances belong in private subnets behind the load balancer.",
        ).at(AttrPath::root("subnet_ids")));
    }
    let known: Vec<String> = volumes.iter().flatten().cloned().collect();
    if known.is_empty() {
        return;
    }
    let found = match ec2::describe_volumes(aws, known).await {
        Ok(v) => v,
        Err(e) => return diags.error_at(AttrPath::root("data_volume_ids"), "Checking the data volumes", e),
    };
    for (i, v) in volumes.iter().enumerate() {
        let Some(v) = v else { continue };
        let subnet = &subnet_ids[i % subnet_ids.len()];
        let (Some(vol_zone), Some(subnet_zone)) = (found.iter().find(|f| f.volume_id() == Some(v.as_str())).and_then(|f| f.availability_zone()), zone_of.get(subnet)) else { continue };
        if vol_zone != subnet_zone {
            diags.error_at(
                AttrPath::root("data_volume_ids").index(i),
                format!("Data volume {v} is in {vol_zone}, but instance {} goes to {subnet_zone}", i + 1),
                format!("instance {} is placed in subnet {subnet} ({subnet_zone}); EBS volumes attach only within their zone. Create the volume in {subnet_zone}, or reorder subnet_ids.", i + 1),
            );
        }
    }
}
