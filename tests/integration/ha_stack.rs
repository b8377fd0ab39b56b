//! Acceptance tests of a multi-instance `dify_ec2_stack`'s shared secret and instance policy, through real Terraform
//! against the emulator: created before the instances, never read, drift repaired, adopted, imported, refused when
//! foreign, scheduled for deletion on destroy and restored by a re-create within the recovery window.

use crate::ec2_stack::{config, setup, stack_instances, SHARED};
use crate::harness::{Moto, Workspace};
use crate::proxy::{is_read_only, AwsProxy};
use crate::seed::SeededNetwork;

const SECRET: &str = "dify/dify-app/app-secrets";
const TWO: &str = "  instance_count = 2\n  data_volume_ids = [dify_persistent_volume.a.id, dify_persistent_volume.c.id]";
/// What instance 0 would write into the shared secret; the provider must never carry it anywhere.
const SENTINEL: &str = "sentinel-shared-value-8c1f";

/// The two-instance stack, and the data source given the same inputs.
fn two_instances(net: &SeededNetwork, cert: &str) -> String {
    config(net, cert, &format!("{TWO}\n{SHARED}"))
        + r#"
data "dify_instance_policy" "app" {
  name           = "dify-app"
  instance_count = 2
  s3_bucket      = "dify-files"
  secret_arns    = ["arn:aws:secretsmanager:us-east-1:123456789012:secret:dify-db"]
}

output "policy" {
  value = data.dify_instance_policy.app.json
}
"#
}

async fn describe(sm: &aws_sdk_secretsmanager::Client) -> Option<aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput> {
    sm.describe_secret().secret_id(SECRET).send().await.ok()
}

async fn value(sm: &aws_sdk_secretsmanager::Client) -> String {
    sm.get_secret_value().secret_id(SECRET).send().await.unwrap().secret_string().unwrap_or_default().to_string()
}

/// The emulator seeded, a proxy in front of it, and a workspace holding the two-instance stack, initialised.
async fn start() -> (Moto, aws_sdk_ec2::Client, aws_sdk_secretsmanager::Client, AwsProxy, Workspace) {
    let moto = Moto::start();
    let (ec2, net, cert) = setup(&moto).await;
    let sm = moto.secretsmanager().await;
    let proxy = AwsProxy::start(&moto.endpoint());
    let ws = Workspace::via(&proxy.endpoint(), &two_instances(&net, &cert));
    ws.init();
    (moto, ec2, sm, proxy, ws)
}

#[tokio::test]
async fn two_instances_share_one_owned_secret_through_create_drift_import_destroy_and_recreate() {
    let (_moto, ec2, sm, proxy, ws) = start().await;
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let calls: Vec<String> = proxy.calls().into_iter().map(|c| c.operation).collect();
    let created = calls.iter().position(|o| o == "secretsmanager:CreateSecret").expect("the secret was created");
    assert!(calls.iter().position(|o| o == "ec2:RunInstances").unwrap() > created, "before any instance launched");

    let found = describe(&sm).await.expect("the shared secret exists");
    assert!(found.tags().iter().any(|t| t.key() == Some("dify:stack") && t.value() == Some("dify-app")), "tagged as the stack's");
    assert_eq!(value(&sm).await, "{}", "created holding an empty object");
    let outputs = ws.outputs();
    let out = &outputs["stack"]["value"];
    assert_eq!(out["shared_secret_arn"], found.arn().unwrap(), "its ARN in state");
    assert_eq!(stack_instances(&ec2, "dify-app").await.len(), 2);
    assert!(out["rendered_user_data"].as_str().unwrap().contains(&format!("DIFY_SHARED_SECRETS='{SECRET}'")), "the user data names it");
    let policy: serde_json::Value = serde_json::from_str(out["instance_policy_json"].as_str().unwrap()).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    let write = statements.iter().find(|s| s["Sid"] == "WriteSharedSecret").expect("PutSecretValue on the shared secret");
    assert_eq!(write["Resource"], "arn:aws:secretsmanager:us-east-1:*:secret:dify/dify-app/app-secrets-*");
    assert!(statements.iter().any(|s| s["Resource"] == "arn:aws:s3:::dify-files/*"), "the bucket: {policy}");
    assert_eq!(outputs["policy"]["value"], out["instance_policy_json"], "the data source renders the same document from the same inputs");
    ws.assert_no_changes();

    // Instance 0 fills the secret; no plan, state or log of the provider ever holds its value.
    sm.put_secret_value().secret_id(SECRET).secret_string(format!("{{\"SECRET_KEY\":\"{SENTINEL}\"}}")).send().await.unwrap();
    let ws = ws.env("TF_LOG_PROVIDER", "DEBUG");
    let logs = ws.ok(&["apply", "-auto-approve", "-input=false", "-refresh-only"]).stderr;
    ws.ok(&["plan", "-out=audit.plan", "-input=false"]);
    for (what, text) in [("state", ws.ok(&["state", "pull"]).stdout), ("plan", ws.ok(&["show", "-json", "audit.plan"]).stdout), ("DEBUG logs", logs)] {
        assert!(!text.contains(SENTINEL), "the {what} holds the shared secret's value");
    }

    // Scheduled for deletion outside Terraform: the plan shows it, the apply restores it with its values.
    sm.delete_secret().secret_id(SECRET).recovery_window_in_days(7).send().await.unwrap();
    ws.plan_shows_then_apply_restores(&["shared_secret_arn"]);
    assert!(describe(&sm).await.unwrap().deleted_date().is_none(), "restored");
    assert!(value(&sm).await.contains(SENTINEL), "with its values");
    // Deleted for good outside Terraform: re-created empty (instance 0 fills it again from its volume at its next boot).
    sm.delete_secret().secret_id(SECRET).force_delete_without_recovery(true).send().await.unwrap();
    ws.plan_shows_then_apply_restores(&["shared_secret_arn"]);
    let recreated = describe(&sm).await.expect("re-created");
    assert_eq!(value(&sm).await, "{}");
    assert_eq!(ws.outputs()["stack"]["value"]["shared_secret_arn"], recreated.arn().unwrap());

    // Import finds it by name and tag.
    ws.ok(&["state", "rm", "dify_ec2_stack.app"]);
    ws.ok(&["import", "-input=false", "dify_ec2_stack.app", "dify-app"]);
    let shown = ws.ok(&["state", "show", "dify_ec2_stack.app"]).stdout;
    assert!(shown.contains(recreated.arn().unwrap()), "the imported state holds the secret:\n{shown}");
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    ws.assert_no_changes();

    // Destroy: instances first, then the secret scheduled for deletion, nothing else left.
    proxy.clear_calls();
    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    let calls: Vec<String> = proxy.calls().into_iter().map(|c| c.operation).collect();
    let deleted = calls.iter().position(|o| o == "secretsmanager:DeleteSecret").expect("DeleteSecret called");
    assert!(calls.iter().rposition(|o| o == "ec2:TerminateInstances").unwrap() < deleted, "after the instances are gone");
    assert!(describe(&sm).await.unwrap().deleted_date().is_some(), "scheduled for deletion, restorable");
    assert!(stack_instances(&ec2, "dify-app").await.is_empty());

    // Created again within the recovery window: the same secret, restored, not a second one.
    sm.put_secret_value().secret_id(SECRET).secret_string(format!("{{\"SECRET_KEY\":\"{SENTINEL}\"}}")).send().await.ok();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let again = describe(&sm).await.unwrap();
    assert_eq!(again.arn(), recreated.arn(), "the same secret");
    assert!(again.deleted_date().is_none());
    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
}

#[tokio::test]
async fn a_foreign_secret_is_refused_before_any_change_and_an_interrupted_create_adopts_its_own() {
    let (_moto, ec2, sm, proxy, ws) = start().await;

    // Someone else's secret of the same name: refused at plan, naming it and the fix, before anything changes.
    sm.create_secret().name(SECRET).secret_string("{\"theirs\":\"x\"}").send().await.unwrap();
    let out = ws.run(&["apply", "-auto-approve", "-input=false"]);
    assert_ne!(out.code, 0);
    let flat = out.flat();
    assert!(flat.contains(SECRET) && flat.contains("not tagged dify:stack = dify-app") && flat.contains("Nothing was changed"), "{}", out.all());
    let changed: Vec<String> = proxy.calls().into_iter().map(|c| c.operation).filter(|o| !is_read_only(o)).collect();
    assert!(changed.is_empty(), "refused at plan, before any change: {changed:?}");
    assert_eq!(value(&sm).await, "{\"theirs\":\"x\"}", "their secret untouched");
    sm.delete_secret().secret_id(SECRET).force_delete_without_recovery(true).send().await.unwrap();

    // Killed right after CreateSecret reached AWS: the next apply adopts the secret instead of making another.
    proxy.interrupt_after(&ws, &["apply", "-auto-approve", "-input=false"], "secretsmanager:CreateSecret");
    let orphan = describe(&sm).await.expect("the interrupted create made the secret");
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert_eq!(proxy.count("secretsmanager:CreateSecret"), 1, "no second CreateSecret");
    assert_eq!(ws.outputs()["stack"]["value"]["shared_secret_arn"], orphan.arn().unwrap(), "adopted");
    assert_eq!(stack_instances(&ec2, "dify-app").await.len(), 2);
    ws.assert_no_changes();
}
