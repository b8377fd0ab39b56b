//! The backup schedule of a `dify_persistent_volume`: one Data Lifecycle Manager policy that targets the volume by
//! its `dify:backup` tag. Its schema, the schedule syntax, the plan of its computed values, reading it back (by id,
//! or by the volume's tag at import), and converging it: create (adopting one an interrupted apply made), update in
//! place, delete. Snapshots the policy took are plain EBS snapshots and outlive it.

use std::collections::BTreeMap;

use aws_sdk_dlm::types::{
    CreateRule, GettablePolicyStateValues, IntervalUnitValues, LifecyclePolicy, PolicyDetails, PolicyTypeValues, ResourceTypeValues, RetainRule, Schedule as DlmSchedule, SettablePolicyStateValues, Tag,
};
use aws_sdk_ec2::types::{Filter, Volume};
use serde::Deserialize;

use crate::aws::{dlm, errors, tags, AwsClients, OpExt};
use crate::framework::decode::decode;
use crate::framework::schema::{Attribute, Block, NestedBlock, Validator};
use crate::framework::value::Value;
use crate::framework::{validate, AttrPath, Diagnostic, Diagnostics};
use crate::log;

pub(super) const BLOCK: &str = "backup";
/// The one schedule of the policy (DLM names take letters, digits, spaces, `_` and `-`).
const SCHEDULE_NAME: &str = "dify-backup";
const RETAIN: (i64, i64) = (1, 1000);
const SCHEDULE_HELP: &str = "use `daily@HH:MM` (once a day at that UTC time, e.g. `daily@03:00`) or a six-field DLM cron expression in UTC with `?` for either day-of-month or day-of-week, e.g. `cron(0 18 ? * SUN *)`";

/// The configured or planned `backup` block.
#[derive(Deserialize, Clone, PartialEq, Debug)]
pub(super) struct BackupSpec {
    schedule: String,
    retain: i64,
    role_arn: Option<String>,
    copy_tags: bool,
    enabled: bool,
}

pub(super) fn block() -> NestedBlock {
    NestedBlock::single(
        BLOCK,
        Block::new()
            .description("Scheduled snapshots of the volume by EBS Data Lifecycle Manager (one lifecycle policy targeting the volume by its `dify:backup` tag, carrying the volume's tags). Each snapshot is tagged `dify:backup-of = <volume id>` and restores with `snapshot_id`. Removing the block, or destroying the volume, deletes the policy; the snapshots it took are kept (and reported in a warning) until you delete them. Needs `dlm:CreateLifecyclePolicy`, `dlm:GetLifecyclePolicy`, `dlm:GetLifecyclePolicies`, `dlm:UpdateLifecyclePolicy`, `dlm:DeleteLifecyclePolicy`, `dlm:TagResource` and `dlm:UntagResource`, plus `iam:PassRole` on `role_arn`.")
            .attr(
                Attribute::string("schedule")
                    .required()
                    .description("When to snapshot, in UTC: `daily@HH:MM` (e.g. `daily@03:00`), or a DLM cron expression such as `cron(0 18 ? * SUN *)` (six fields; `?` in day-of-month or day-of-week). Changes in place.")
                    .validate(schedule_validator()),
            )
            .attr(Attribute::number("retain").required().description("How many of the scheduled snapshots to keep, 1–1000; DLM deletes the oldest beyond that. Changes in place.").validate(validate::int_between(RETAIN.0, RETAIN.1)))
            .attr(
                Attribute::string("role_arn")
                    .optional()
                    .computed()
                    .description("The IAM role DLM acts as. Default: the account's `AWSDataLifecycleManagerDefaultRole` (create it once with `aws dlm create-default-role --resource-type snapshot`). Changes in place.")
                    .validate(validate::prefixed("arn:")),
            )
            .attr(Attribute::bool("copy_tags").default(Value::Bool(true)).description("Copy the volume's tags to each snapshot (default true)."))
            .attr(Attribute::bool("enabled").default(Value::Bool(true)).description("Run the schedule (default true). `false` pauses it, keeping the policy. A policy disabled outside Terraform, or a volume whose `dify:backup` tag was removed (the policy no longer finds it), reads as `false`: the plan shows it and the apply repairs it."))
            .attr(Attribute::string("policy_id").computed().description("The lifecycle policy id (`policy-…`). A policy deleted outside Terraform is planned again.")),
    )
}

/// When a backup schedule runs: once a day at a UTC time, or a DLM cron expression.
#[derive(Debug, PartialEq)]
enum Schedule {
    Daily(String),
    Cron(String),
}

impl Schedule {
    fn parse(s: &str) -> Result<Schedule, String> {
        if let Some(time) = s.strip_prefix("daily@") {
            let ok = matches!(time.split_once(':'), Some((h, m)) if h.len() == 2 && m.len() == 2 && h.parse::<u8>().is_ok_and(|h| h < 24) && m.parse::<u8>().is_ok_and(|m| m < 60));
            return if ok { Ok(Schedule::Daily(time.to_string())) } else { Err(format!("{time:?} is not a time of day HH:MM (00:00–23:59)")) };
        }
        if let Some(inner) = s.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
            let fields: Vec<&str> = inner.split_whitespace().collect();
            if fields.len() != 6 {
                return Err(format!("a DLM cron expression has six fields (minutes hours day-of-month month day-of-week year); {s:?} has {}", fields.len()));
            }
            if (fields[2] == "?") == (fields[4] == "?") {
                return Err(format!("exactly one of day-of-month ({}) and day-of-week ({}) must be `?`", fields[2], fields[4]));
            }
            return Ok(Schedule::Cron(s.to_string()));
        }
        Err(format!("{s:?} is neither `daily@HH:MM` nor `cron(...)`"))
    }

    fn create_rule(&self) -> CreateRule {
        match self {
            Schedule::Daily(time) => CreateRule::builder().interval(24).interval_unit(IntervalUnitValues::Hours).times(time).build(),
            Schedule::Cron(expression) => CreateRule::builder().cron_expression(expression).build(),
        }
    }

    /// The `schedule` string of a policy's create rule; a rule this provider would not write reads as a description
    /// that matches no configuration, so the plan shows it and the update puts the configured one back.
    fn of_rule(rule: &CreateRule) -> String {
        if let Some(expression) = rule.cron_expression() {
            return expression.to_string();
        }
        let (interval, unit) = (rule.interval().unwrap_or_default(), rule.interval_unit().map(|u| u.as_str()).unwrap_or_default());
        match rule.times() {
            [time] if interval == 24 && unit == "HOURS" => format!("daily@{time}"),
            times => format!("every {interval} {unit} at {}", times.join(",")),
        }
    }
}

fn schedule_validator() -> Validator {
    std::sync::Arc::new(|v: &Value, p: &AttrPath, d: &mut Diagnostics| {
        if let Some(s) = v.as_str() {
            if let Err(why) = Schedule::parse(s) {
                d.error_at(p.clone(), format!("Invalid value for `{p}`"), format!("{why}; {SCHEDULE_HELP}."));
            }
        }
    })
}

/// The plan's `backup.policy_id` and `backup.role_arn`: the prior ones while there is a policy, else known after
/// apply (the default role is known at plan when configure learnt the account).
pub(super) fn plan(aws: Option<&AwsClients>, prior: &Value, config: &Value, planned: &mut Value) {
    let mut block = planned.get(BLOCK).clone();
    if config.get(BLOCK).is_null() || !matches!(block, Value::Object(_)) {
        return;
    }
    let before = prior.get(BLOCK);
    let policy_id = match before.get("policy_id") {
        Value::String(id) => Value::string(id),
        _ => Value::unknown(),
    };
    block.set("policy_id", policy_id);
    if config.get(BLOCK).get("role_arn").is_null() {
        let role = match (before.get("role_arn"), aws.and_then(|a| a.account_id.as_deref().map(|account| (a, account)))) {
            (Value::String(r), _) => Value::string(r),
            (_, Some((aws, account))) => Value::String(format!("arn:{}:iam::{account}:role/{}", crate::aws::partition(&aws.region), dlm::DEFAULT_ROLE_NAME)),
            _ => Value::unknown(),
        };
        block.set("role_arn", role);
    }
    planned.set(BLOCK, block);
}

/// The `backup` block of state from a policy as DLM reports it.
fn policy_state(policy: &LifecyclePolicy) -> Value {
    let schedule = policy.policy_details().and_then(|d| d.schedules().first());
    crate::object! {
        "schedule" => schedule.and_then(|s| s.create_rule()).map(|r| Value::String(Schedule::of_rule(r))).unwrap_or(Value::Null),
        "retain" => schedule.and_then(|s| s.retain_rule()).and_then(|r| r.count()).map(|n| Value::int(n as i64)).unwrap_or(Value::Null),
        "role_arn" => policy.execution_role_arn().map(Value::string).unwrap_or(Value::Null),
        "copy_tags" => Value::Bool(schedule.and_then(|s| s.copy_tags()).unwrap_or(false)),
        "enabled" => Value::Bool(policy.state() == Some(&GettablePolicyStateValues::Enabled)),
        "policy_id" => policy.policy_id().map(Value::string).unwrap_or(Value::Null),
    }
}

/// The `backup` block of state after a refresh: the policy of `prior`'s `policy_id` as it is now, or null when it
/// was deleted outside Terraform (the plan then adds it again). A volume that lost its `dify:backup` tag is not
/// backed up by the policy any more: that reads as `enabled = false`, and the update tags it again. No call when
/// there is no policy.
pub(super) async fn read(aws: &AwsClients, prior: &Value, volume: &Volume) -> Result<Value, errors::AwsError> {
    let Some(id) = prior.get(BLOCK).get("policy_id").as_str() else { return Ok(Value::Null) };
    Ok(match dlm::find_policy(aws, id).await? {
        Some(policy) => {
            let mut state = policy_state(&policy);
            let volume_id = volume.volume_id().unwrap_or_default();
            if tags::from_ec2(volume.tags()).get(tags::BACKUP).map(String::as_str) != Some(volume_id) {
                log::warn("the volume lost the tag its backup policy targets", &[("policy_id", id.to_string().into())]);
                state.set("enabled", Value::Bool(false));
            }
            state
        }
        None => {
            log::warn("the backup policy is gone; planning it again", &[("policy_id", id.to_string().into())]);
            Value::Null
        }
    })
}

/// The `backup` block of an imported volume: the policy targeting its `dify:backup` tag, if it has one.
pub(super) async fn import(aws: &AwsClients, volume: &Volume) -> Result<Value, errors::AwsError> {
    let Some(target) = tags::from_ec2(volume.tags()).get(tags::BACKUP).cloned() else { return Ok(Value::Null) };
    let Some(id) = dlm::find_policy_by_target_tag(aws, tags::BACKUP, &target).await? else { return Ok(Value::Null) };
    Ok(dlm::find_policy(aws, &id).await?.map(|p| policy_state(&p)).unwrap_or(Value::Null))
}

/// Makes the policy of volume `volume_id` what `planned` (its `backup` block) says, from what `prior` recorded:
/// creates, updates in place or deletes it, and moves its tags from `tags_before` to `tags`. Returns the `backup`
/// block of state. Deleting warns how many snapshots the policy took are kept.
pub(super) async fn converge(aws: &AwsClients, volume_id: &str, prior: &Value, planned: &Value, tags_before: &BTreeMap<String, String>, tags: &BTreeMap<String, String>, diags: &mut Diagnostics) -> Result<Value, String> {
    let prior_id = prior.get("policy_id").as_str().map(str::to_string);
    if planned.is_null() {
        if let Some(id) = prior_id {
            delete(aws, volume_id, &id, diags).await?;
            if let Err(e) = aws.ec2.delete_tags().resources(volume_id).tags(aws_sdk_ec2::types::Tag::builder().key(tags::BACKUP).build()).send().await.op("EC2 DeleteTags", volume_id) {
                // The tag alone schedules nothing: a later backup block adopts it.
                log::warn("could not remove the backup tag", &[("error", e.to_string().into())]);
            }
        }
        return Ok(Value::Null);
    }
    let spec: BackupSpec = decode(&planned.without_unknowns()).map_err(|d| d.to_string())?;
    let schedule = Schedule::parse(&spec.schedule)?;
    let role = match &spec.role_arn {
        Some(r) => r.clone(),
        None => dlm::default_role_arn(aws).await?,
    };
    let desired = |id: &str| {
        let mut state = planned.clone();
        state.set("policy_id", Value::string(id));
        state.set("role_arn", Value::string(&role));
        state
    };
    let details = policy_details(volume_id, &schedule, &spec);
    let state = if spec.enabled { SettablePolicyStateValues::Enabled } else { SettablePolicyStateValues::Disabled };
    let description = format!("Dify data volume {volume_id} backups");

    if let Some(id) = prior_id {
        if desired(&id) != *prior {
            tag_volume(aws, volume_id).await?;
            update(aws, &id, &role, state, &description, details).await?;
        }
        sync_tags(aws, &id, tags_before, tags).await?;
        return Ok(desired(&id));
    }

    tag_volume(aws, volume_id).await?;
    let id = match dlm::find_policy_by_target_tag(aws, tags::BACKUP, volume_id).await? {
        Some(id) => {
            log::info("adopting the backup policy an interrupted apply created", &[("policy_id", id.clone().into())]);
            update(aws, &id, &role, state, &description, details).await?;
            sync_tags(aws, &id, &BTreeMap::new(), tags).await?;
            id
        }
        None => {
            let mut policy_tags = tags.clone();
            policy_tags.insert(tags::BACKUP.to_string(), volume_id.to_string());
            aws.dlm
                .create_lifecycle_policy()
                .execution_role_arn(&role)
                .description(&description)
                .state(state)
                .policy_details(details)
                .set_tags(Some(policy_tags.into_iter().collect()))
                .send()
                .await
                .op("DLM CreateLifecyclePolicy", format!("for {volume_id}"))?
                .policy_id
                .ok_or_else(|| format!("DLM CreateLifecyclePolicy for {volume_id} returned no policy id"))?
        }
    };
    Ok(desired(&id))
}

/// Tags the volume with what its policy targets; the tag is also how an interrupted apply's policy is found again.
async fn tag_volume(aws: &AwsClients, volume_id: &str) -> Result<(), String> {
    aws.ec2
        .create_tags()
        .resources(volume_id)
        .tags(aws_sdk_ec2::types::Tag::builder().key(tags::BACKUP).value(volume_id).build())
        .send()
        .await
        .op("EC2 CreateTags", volume_id)?;
    Ok(())
}

fn policy_details(volume_id: &str, schedule: &Schedule, spec: &BackupSpec) -> PolicyDetails {
    PolicyDetails::builder()
        .policy_type(PolicyTypeValues::EbsSnapshotManagement)
        .resource_types(ResourceTypeValues::Volume)
        .target_tags(Tag::builder().key(tags::BACKUP).value(volume_id).build())
        .schedules(
            DlmSchedule::builder()
                .name(SCHEDULE_NAME)
                .copy_tags(spec.copy_tags)
                .create_rule(schedule.create_rule())
                .retain_rule(RetainRule::builder().count(spec.retain as i32).build())
                .tags_to_add(Tag::builder().key(tags::BACKUP_OF).value(volume_id).build())
                .build(),
        )
        .build()
}

async fn update(aws: &AwsClients, id: &str, role: &str, state: SettablePolicyStateValues, description: &str, details: PolicyDetails) -> Result<(), String> {
    aws.dlm
        .update_lifecycle_policy()
        .policy_id(id)
        .execution_role_arn(role)
        .state(state)
        .description(description)
        .policy_details(details)
        .send()
        .await
        .op("DLM UpdateLifecyclePolicy", id)?;
    Ok(())
}

/// Moves the tags of policy `id` from `before` to `after`; its internal tag stays.
async fn sync_tags(aws: &AwsClients, id: &str, before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Result<(), String> {
    let (upsert, remove) = tags::diff(before, after);
    if upsert.is_empty() && remove.is_empty() {
        return Ok(());
    }
    let arn = dlm::policy_arn(aws, id).await?;
    if !upsert.is_empty() {
        aws.dlm.tag_resource().resource_arn(&arn).set_tags(Some(upsert.into_iter().collect())).send().await.op("DLM TagResource", id)?;
    }
    if !remove.is_empty() {
        aws.dlm.untag_resource().resource_arn(&arn).set_tag_keys(Some(remove)).send().await.op("DLM UntagResource", id)?;
    }
    Ok(())
}

/// Deletes policy `id` (already gone is fine) and warns how many snapshots it took remain.
pub(super) async fn delete(aws: &AwsClients, volume_id: &str, id: &str, diags: &mut Diagnostics) -> Result<(), String> {
    errors::found(aws.dlm.delete_lifecycle_policy().policy_id(id).send().await.op("DLM DeleteLifecyclePolicy", id))?;
    let kept = aws
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(Filter::builder().name(format!("tag:{}", tags::BACKUP_OF)).values(volume_id).build())
        .send()
        .await
        .op("EC2 DescribeSnapshots", "")?
        .snapshots
        .unwrap_or_default()
        .len();
    diags.push(Diagnostic::warning(
        format!("Backup policy {id} of EBS volume ({volume_id}) deleted"),
        format!("no more scheduled snapshots are taken. The {kept} snapshot(s) it took are kept (tagged {}={volume_id}); restore one with snapshot_id, and delete them when no longer needed.", tags::BACKUP_OF),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_in_both_forms_and_read_back_as_written() {
        for s in ["daily@03:00", "daily@23:59", "cron(0 18 * * ? *)", "cron(30 2 ? * SUN *)"] {
            let parsed = Schedule::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(Schedule::of_rule(&parsed.create_rule()), s, "round trip of {s}");
        }
    }

    #[test]
    fn bad_schedules_say_why() {
        for (s, why) in [
            ("daily@3:00", "HH:MM"),
            ("daily@24:00", "HH:MM"),
            ("daily@03:60", "HH:MM"),
            ("cron(0 18 * * *)", "six fields"),
            ("cron(0 18 * * * *)", "exactly one"),
            ("cron(0 18 ? * ? *)", "exactly one"),
            ("every day", "neither"),
            ("0 18 * * ? *", "neither"),
        ] {
            let e = Schedule::parse(s).expect_err(s);
            assert!(e.contains(why), "{s}: {e}");
        }
        let mut d = Diagnostics::new();
        schedule_validator()(&Value::string("weekly"), &AttrPath::root(BLOCK).attr("schedule"), &mut d);
        let text = format!("{d:?}");
        assert!(text.contains("backup.schedule") && text.contains("daily@HH:MM"), "{text}");
    }

    #[test]
    fn a_foreign_rule_reads_as_something_no_configuration_matches() {
        let rule = CreateRule::builder().interval(12).interval_unit(IntervalUnitValues::Hours).times("01:00").build();
        let read = Schedule::of_rule(&rule);
        assert!(Schedule::parse(&read).is_err(), "{read}");
    }

    #[test]
    fn the_plan_keeps_the_policy_id_and_role_and_leaves_new_ones_unknown() {
        let block = |id: Value, role: Value| crate::object! {"schedule" => Value::string("daily@03:00"), "retain" => Value::int(7), "role_arn" => role, "copy_tags" => Value::Bool(true), "enabled" => Value::Bool(true), "policy_id" => id};
        let config = crate::object! {BLOCK => block(Value::Null, Value::Null)};
        let mut planned = config.clone();
        plan(None, &Value::Null, &config, &mut planned);
        assert!(planned.get(BLOCK).get("policy_id").is_unknown() && planned.get(BLOCK).get("role_arn").is_unknown());

        let prior = crate::object! {BLOCK => block(Value::string("policy-1"), Value::string("arn:aws:iam::1:role/r"))};
        let mut planned = config.clone();
        plan(None, &prior, &config, &mut planned);
        assert_eq!(planned.get(BLOCK).get("policy_id"), &Value::string("policy-1"));
        assert_eq!(planned.get(BLOCK).get("role_arn"), &Value::string("arn:aws:iam::1:role/r"));

        let mut planned = crate::object! {BLOCK => Value::Null};
        plan(None, &prior, &crate::object! {BLOCK => Value::Null}, &mut planned);
        assert!(planned.get(BLOCK).is_null(), "no block, no policy");
    }
}
