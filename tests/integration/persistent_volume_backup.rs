//! Acceptance tests of `dify_persistent_volume`'s `backup` block through real Terraform: the volume in the emulator,
//! its Data Lifecycle Manager policy in the proxy's fake DLM (moto has none).

use aws_sdk_dlm::types::SettablePolicyStateValues;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use serde_json::json;

use crate::harness::{Moto, Workspace, MOTO_ACCOUNT};
use crate::proxy::AwsProxy;

fn config(backup: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    dify = {{ source = "NAMESPACE/dify" }}
  }}
}}

provider "dify" {{
  default_tags {{
    tags = {{ Project = "dify" }}
  }}
}}

resource "dify_persistent_volume" "data" {{
  name              = "dify-dev-data"
  availability_zone = "us-east-1a"
  tags              = {{ Environment = "dev" }}
{backup}
}}

output "id" {{
  value = dify_persistent_volume.data.id
}}
"#
    )
}

fn backup(schedule: &str, retain: u32) -> String {
    format!("  backup {{\n    schedule = \"{schedule}\"\n    retain   = {retain}\n  }}")
}

/// A DLM client going where the provider's goes (the proxy), for changes made outside Terraform.
async fn dlm(moto: &Moto, proxy: &AwsProxy) -> aws_sdk_dlm::Client {
    aws_sdk_dlm::Client::from_conf(aws_sdk_dlm::config::Builder::from(&moto.sdk_config().await).endpoint_url(proxy.endpoint()).build())
}

async fn volume_tag(ec2: &aws_sdk_ec2::Client, id: &str, key: &str) -> Option<String> {
    let v = ec2.describe_volumes().volume_ids(id).send().await.unwrap().volumes.unwrap_or_default().remove(0);
    v.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).map(str::to_string)
}

#[tokio::test]
async fn a_backup_schedule_is_created_updated_drift_corrected_imported_and_removed_keeping_its_snapshots() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let proxy = AwsProxy::start(&moto.endpoint());
    let dlm = dlm(&moto, &proxy).await;
    let ws = Workspace::via(&proxy.endpoint(), &config(&backup("daily@03:00", 7)));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let id = ws.outputs()["id"]["value"].as_str().unwrap().to_string();

    // One policy, targeting this volume by the tag the provider put on it, as configured.
    let policies = proxy.dlm_policies();
    assert_eq!(policies.len(), 1, "{policies:?}");
    let policy = &policies[0];
    let policy_id = policy["PolicyId"].as_str().unwrap().to_string();
    assert_eq!(volume_tag(&ec2, &id, "dify:backup").await.as_deref(), Some(id.as_str()));
    assert_eq!(policy["PolicyDetails"]["TargetTags"], json!([{"Key": "dify:backup", "Value": id}]));
    assert_eq!(policy["PolicyDetails"]["ResourceTypes"], json!(["VOLUME"]));
    let schedule = &policy["PolicyDetails"]["Schedules"][0];
    assert_eq!(schedule["CreateRule"], json!({"Interval": 24, "IntervalUnit": "HOURS", "Times": ["03:00"]}));
    assert_eq!(schedule["RetainRule"], json!({"Count": 7}));
    assert_eq!(schedule["CopyTags"], json!(true));
    assert_eq!(schedule["TagsToAdd"], json!([{"Key": "dify:backup-of", "Value": id}]));
    assert_eq!(policy["State"], "ENABLED");
    assert_eq!(policy["ExecutionRoleArn"], format!("arn:aws:iam::{MOTO_ACCOUNT}:role/AWSDataLifecycleManagerDefaultRole"));
    assert_eq!(policy["Tags"]["Environment"], "dev");
    assert_eq!(policy["Tags"]["Project"], "dify", "default_tags too");
    ws.assert_no_changes();
    // The internal tag stays out of `tags` and `tags_all`: a tag change on the volume leaves it alone.
    let shown = ws.ok(&["state", "show", "-no-color", "dify_persistent_volume.data"]).stdout;
    assert!(!shown.contains("\"dify:backup\""), "{shown}");

    // Schedule, retention and tags change in place: the same policy, updated.
    ws.write("main.tf", &config(&backup("cron(0 18 ? * SUN *)", 14)).replace("Environment = \"dev\"", "Environment = \"stg\""));
    let plan = ws.ok(&["plan", "-input=false"]);
    assert!(plan.stdout.contains("0 to add, 1 to change, 0 to destroy") && plan.stdout.contains("7 -> 14"), "{}", plan.stdout);
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let policy = &proxy.dlm_policies()[0];
    assert_eq!(policy["PolicyId"], policy_id.as_str());
    assert_eq!(policy["PolicyDetails"]["Schedules"][0]["CreateRule"], json!({"CronExpression": "cron(0 18 ? * SUN *)"}));
    assert_eq!(policy["PolicyDetails"]["Schedules"][0]["RetainRule"], json!({"Count": 14}));
    assert_eq!(policy["Tags"]["Environment"], "stg");
    assert_eq!(policy["Tags"]["dify:backup"], id.as_str(), "the internal tag stays");
    assert_eq!(proxy.count("dlm:CreateLifecyclePolicy"), 1);
    ws.assert_no_changes();

    // Disabled outside Terraform: shown as drift, enabled again.
    dlm.update_lifecycle_policy().policy_id(&policy_id).state(SettablePolicyStateValues::Disabled).send().await.unwrap();
    ws.plan_shows_then_apply_restores(&["enabled", "false -> true"]);
    assert_eq!(proxy.dlm_policies()[0]["State"], "ENABLED");

    // The volume's target tag removed outside Terraform: the policy no longer backs it up, which reads as disabled.
    ec2.delete_tags().resources(&id).tags(Tag::builder().key("dify:backup").build()).send().await.unwrap();
    ws.plan_shows_then_apply_restores(&["enabled", "false -> true"]);
    assert_eq!(volume_tag(&ec2, &id, "dify:backup").await.as_deref(), Some(id.as_str()), "tagged again");

    // Deleted outside Terraform: planned again and recreated.
    dlm.delete_lifecycle_policy().policy_id(&policy_id).send().await.unwrap();
    ws.plan_shows_then_apply_restores(&["+ backup {", "1 to change"]);
    let policies = proxy.dlm_policies();
    assert_eq!(policies.len(), 1);
    let policy_id = policies[0]["PolicyId"].as_str().unwrap().to_string();

    // Import reads the policy back by the volume's tag.
    ws.ok(&["state", "rm", "dify_persistent_volume.data"]);
    ws.ok(&["import", "-input=false", "dify_persistent_volume.data", &id]);
    let shown = ws.ok(&["state", "show", "-no-color", "dify_persistent_volume.data"]).stdout;
    assert!(shown.contains(&policy_id) && shown.contains("cron(0 18 ? * SUN *)"), "{shown}");
    ws.assert_no_changes();

    // A snapshot the schedule took (DLM tags each one with the volume it came from).
    let taken = ec2
        .create_snapshot()
        .volume_id(&id)
        .tag_specifications(TagSpecification::builder().resource_type(ResourceType::Snapshot).tags(Tag::builder().key("dify:backup-of").value(&id).build()).build())
        .send()
        .await
        .unwrap()
        .snapshot_id
        .unwrap();

    // Removing the block deletes the policy and says the snapshots are kept.
    ws.write("main.tf", &config(""));
    let out = ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let text = out.flat();
    assert!(text.contains(&format!("Backup policy {policy_id}")) && text.contains("The 1 snapshot(s) it took are kept"), "{}", out.all());
    assert!(proxy.dlm_policies().is_empty());
    assert_eq!(volume_tag(&ec2, &id, "dify:backup").await, None, "the target tag goes with the policy");
    ws.assert_no_changes();

    // Destroy with a schedule: the policy goes first, the snapshots stay.
    ws.write("main.tf", &config(&backup("daily@03:00", 7)));
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert_eq!(proxy.dlm_policies().len(), 1);
    let out = ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    assert!(out.flat().contains("it took are kept"), "{}", out.all());
    assert!(proxy.dlm_policies().is_empty());
    let kept = ec2.describe_snapshots().owner_ids("self").filters(Filter::builder().name("tag:dify:backup-of").values(&id).build()).send().await.unwrap();
    assert_eq!(kept.snapshots().iter().filter_map(|s| s.snapshot_id()).collect::<Vec<_>>(), vec![taken.as_str()]);
}

#[tokio::test]
async fn an_interrupted_apply_adopts_the_backup_policy_it_created() {
    let moto = Moto::start();
    let proxy = AwsProxy::start(&moto.endpoint());
    // Without configure's STS check the account is not known at plan: the default role is resolved at apply.
    let main_tf = config(&backup("daily@03:00", 7)).replace("provider \"dify\" {", "provider \"dify\" {\n  skip_credentials_validation = true");
    let ws = Workspace::via(&proxy.endpoint(), &main_tf);
    ws.init();
    // The policy is created, then Terraform and the provider die before anything records it.
    proxy.interrupt_after(&ws, &["apply", "-auto-approve", "-input=false"], "dlm:CreateLifecyclePolicy");
    assert_eq!(proxy.dlm_policies().len(), 1);
    ws.ok(&["apply", "-auto-approve", "-input=false", "-lock=false"]);
    assert_eq!(proxy.dlm_policies().len(), 1, "no second policy");
    assert_eq!(proxy.count("dlm:CreateLifecyclePolicy"), 1);
    let shown = ws.ok(&["state", "show", "-no-color", "dify_persistent_volume.data"]).stdout;
    assert!(shown.contains(proxy.dlm_policies()[0]["PolicyId"].as_str().unwrap()), "the state adopted it:\n{shown}");
    assert_eq!(proxy.dlm_policies()[0]["ExecutionRoleArn"], format!("arn:aws:iam::{MOTO_ACCOUNT}:role/AWSDataLifecycleManagerDefaultRole"));
    ws.assert_no_changes();
    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
}
