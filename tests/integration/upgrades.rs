//! Boot configuration changes replace instances one at a time, moving the data volume: the replacement is launched
//! and prepared while the old instance serves; a failure rolls back, an interruption is finished by the next apply;
//! and no secret ever reaches state, plans, logs or user data.

use aws_sdk_ec2::types::Instance;

use crate::console;
use crate::ec2_stack::{config, setup, stack_instances, tag, ONE};
use crate::harness::{Moto, Workspace};
use crate::proxy::{AwsProxy, Rule};
use crate::security::leaked;
use crate::seed::SeededNetwork;

fn versioned_with(extra: &str, version: &str) -> String {
    format!("{ONE}\n{extra}\n  dify {{\n    version = \"{version}\"\n    url     = \"https://dify.example.com\"\n  }}")
}

fn data_volume(i: &Instance) -> Option<String> {
    i.block_device_mappings().iter().find(|m| m.device_name() == Some("/dev/sdf")).and_then(|m| m.ebs()).and_then(|e| e.volume_id()).map(str::to_string)
}

fn state_of(i: &Instance) -> Option<&str> {
    i.state().and_then(|s| s.name()).map(|n| n.as_str())
}

/// A one-instance stack with a data volume, applied through the proxy at some version: where every upgrade starts.
pub struct Applied {
    pub ec2: aws_sdk_ec2::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub net: SeededNetwork,
    pub cert: String,
    pub proxy: AwsProxy,
    pub ws: Workspace,
    /// Settings beside `data_volume_ids` and the `dify` block, kept by `to`.
    pub extra: &'static str,
    pub old: Instance,
    pub volume: String,
}

impl Applied {
    /// Points the configuration at `version`, with the same settings.
    pub fn to(&self, version: &str) {
        self.ws.write("main.tf", &config(&self.net, &self.cert, &versioned_with(self.extra, version)));
    }

    pub async fn instances(&self) -> Vec<Instance> {
        stack_instances(&self.ec2, "dify-app").await
    }

    /// After a failed upgrade: the old instance alone, running with its data volume, registered and healthy.
    pub async fn old_serves(&self) {
        let now = self.instances().await;
        assert_eq!(now.len(), 1, "the replacement was terminated");
        assert_eq!(now[0].instance_id(), self.old.instance_id());
        assert_eq!(state_of(&now[0]), Some("running"), "the old instance serves");
        assert_eq!(data_volume(&now[0]).as_deref(), Some(self.volume.as_str()), "with its data volume");
        let tg = self.ws.outputs()["stack"]["value"]["target_group_arns"][0].as_str().unwrap().to_string();
        let health = self.elb.describe_target_health().target_group_arn(&tg).send().await.unwrap();
        let old = health.target_health_descriptions().iter().find(|d| d.target().and_then(|t| t.id()) == self.old.instance_id()).expect("registered");
        assert_eq!(old.target_health().and_then(|h| h.state()).map(|s| s.as_str()), Some("healthy"));
    }

    /// An apply that upgrades: one instance, not the old one, holding the same data volume.
    pub async fn apply_replaces(&self) {
        self.ws.ok(&["apply", "-auto-approve", "-input=false"]);
        let now = self.instances().await;
        assert_eq!(now.len(), 1, "the old instance is gone");
        assert_ne!(now[0].instance_id(), self.old.instance_id(), "replaced");
        assert_eq!(data_volume(&now[0]).as_deref(), Some(self.volume.as_str()), "the same data volume moved over");
    }

    /// The next apply upgrades (`apply_replaces`), and nothing is left to change.
    pub async fn rerun_upgrades(&self) {
        self.apply_replaces().await;
        self.ws.assert_no_changes();
    }

    /// The operations of the calls since the last `clear_calls`, in order.
    pub fn operations(&self) -> Vec<String> {
        self.proxy.calls().into_iter().map(|c| c.operation).collect()
    }
}

pub async fn applied_at(moto: &Moto, version: &str) -> Applied {
    applied_with(moto, "", version).await
}

pub async fn applied_with(moto: &Moto, extra: &'static str, version: &str) -> Applied {
    let (ec2, net, cert) = setup(moto).await;
    let proxy = AwsProxy::start(&moto.endpoint());
    let ws = Workspace::via(&proxy.endpoint(), &config(&net, &cert, &versioned_with(extra, version)));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let old = stack_instances(&ec2, "dify-app").await.remove(0);
    let volume = data_volume(&old).expect("attached");
    Applied { ec2, elb: moto.elbv2().await, net, cert, proxy, ws, extra, old, volume }
}

fn position(calls: &[String], op: &str) -> usize {
    calls.iter().position(|c| c == op).unwrap_or_else(|| panic!("no {op} in {calls:?}"))
}

#[tokio::test]
async fn a_version_bump_prepares_the_replacement_while_the_old_instance_serves_then_moves_the_volume() {
    let moto = Moto::start();
    let up = applied_at(&moto, "1.13.3").await;
    up.to("1.14.0");
    let plan = up.ws.ok(&["plan", "-input=false"]);
    assert!(plan.stdout.contains("0 to add, 1 to change, 0 to destroy") && plan.stdout.contains("DIFY_VERSION='1.14.0'"), "the plan shows the new user data:\n{}", plan.stdout);
    // The replacement pulls its images for a while before it prints the marker.
    let prepare = std::time::Duration::from_secs(3);
    up.proxy.add_rule(Rule::Console { text: console::prepared("1.14.0"), delay: prepare });
    up.proxy.clear_calls();
    up.apply_replaces().await;

    let calls = up.operations();
    let steps = ["RunInstances", "GetConsoleOutput", "DeregisterTargets", "StopInstances", "CreateSnapshot", "DetachVolume", "AttachVolume", "RegisterTargets", "TerminateInstances"];
    let mut order: Vec<&str> = calls.iter().map(|o| o.rsplit(':').next().unwrap()).filter(|o| steps.contains(o)).collect();
    order.dedup();
    assert_eq!(order, steps, "launched and prepared before the old instance stops; never two machines on one disk: {calls:?}");
    let polls = up.proxy.count("ec2:GetConsoleOutput");
    assert!(polls >= 2, "the console was polled until the marker appeared ({polls} polls)");
    let timed = up.proxy.calls();
    let at = |op: &str| timed.iter().find(|c| c.operation == op).unwrap_or_else(|| panic!("no {op}"));
    assert!(at("ec2:StopInstances").received >= at("ec2:RunInstances").answered + prepare, "the old instance stopped only after the new one was prepared");
    up.ws.assert_no_changes();
}

/// A Xen instance type (t2, m4...) shows no live console output, so the marker cannot be waited for: the volume moves
/// at once and the replacement prepares during the switch (today's order), instead of waiting out the timeout and
/// rolling back every upgrade.
#[tokio::test]
async fn a_xen_instance_type_is_replaced_without_waiting_for_a_console_it_cannot_show() {
    let moto = Moto::start();
    let up = applied_with(&moto, "  instance_type = \"t2.medium\"", "1.13.3").await;
    up.to("1.14.0");
    // A console that never shows the marker: waiting for it would end at the update timeout.
    up.proxy.add_rule(Rule::Console { text: String::new(), delay: std::time::Duration::ZERO });
    up.proxy.clear_calls();
    up.apply_replaces().await;
    assert_eq!(up.proxy.count("ec2:GetConsoleOutput"), 0, "no console read on Xen: {:?}", up.operations());
    let calls = up.operations();
    assert!(position(&calls, "ec2:RunInstances") < position(&calls, "ec2:StopInstances"), "still launched before the old instance stops: {calls:?}");
    assert!(position(&calls, "ec2:CreateSnapshot") < position(&calls, "ec2:DetachVolume"), "snapshotted before the detach: {calls:?}");
    up.ws.assert_no_changes();
}

#[tokio::test]
async fn a_replacement_that_fails_to_prepare_is_terminated_and_the_old_instance_serves_on_untouched() {
    let moto = Moto::start();
    let up = applied_at(&moto, "1.13.3").await;
    up.to("1.14.0");
    let reason = "docker pull langgenius/dify-api:1.14.0 failed: toomanyrequests";
    up.proxy.add_rule(Rule::Console { text: console::failed(reason), delay: std::time::Duration::from_secs(1) });
    up.proxy.clear_calls();
    let out = up.ws.run(&["apply", "-auto-approve", "-input=false"]);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains(&format!("dify-bootstrap: FAILED: {reason}")) && out.flat().contains("serves on, untouched"), "the console's failure line is the error:\n{}", out.all());
    up.old_serves().await;
    for never in ["ec2:StopInstances", "ec2:CreateSnapshot", "ec2:DetachVolume", "elasticloadbalancing:DeregisterTargets"] {
        assert_eq!(up.proxy.count(never), 0, "{never} was called: {:?}", up.operations());
    }
    assert_eq!((up.proxy.count("ec2:RunInstances"), up.proxy.count("ec2:TerminateInstances")), (1, 1), "the replacement was launched and terminated");

    // Once the image pulls work again, the next apply upgrades.
    up.proxy.clear_rules();
    up.rerun_upgrades().await;
}

#[tokio::test]
async fn a_failed_attach_rolls_back_to_the_old_instance_and_a_rerun_completes() {
    let moto = Moto::start();
    let up = applied_at(&moto, "1.13.3").await;
    up.to("1.14.0");
    up.proxy.add_rule(Rule::Fail { operation: "ec2:AttachVolume".into(), status: 400, code: "IncorrectState".into(), times: 1 });
    let out = up.ws.run(&["apply", "-auto-approve", "-input=false"]);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains("failed at attaching") && out.flat().contains("rolled back"), "{}", out.all());
    up.old_serves().await;
    up.rerun_upgrades().await;
}

#[tokio::test]
async fn an_interrupted_upgrade_is_finished_by_the_next_apply() {
    let moto = Moto::start();
    let up = applied_at(&moto, "1.13.3").await;
    up.to("1.14.0");
    up.proxy.clear_calls();
    up.proxy.interrupt_after(&up.ws, &["apply", "-auto-approve", "-input=false"], "ec2:RunInstances");
    up.ws.ok(&["apply", "-auto-approve", "-input=false", "-lock=false"]);
    let now = up.instances().await;
    assert_eq!(now.len(), 1, "one instance per index: {:?}", now.iter().map(|i| i.instance_id()).collect::<Vec<_>>());
    assert_ne!(now[0].instance_id(), up.old.instance_id());
    assert_eq!(data_volume(&now[0]).as_deref(), Some(up.volume.as_str()));
    assert!(tag(&now[0], "dify:generation").is_some());
    assert_eq!(up.proxy.count("ec2:RunInstances"), 1, "the launched replacement was adopted, not launched again");
    up.ws.assert_no_changes();
}

#[tokio::test]
async fn no_secret_reaches_state_plans_logs_or_user_data_and_managed_keys_are_refused() {
    let moto = Moto::start();
    let (_, net, cert) = setup(&moto).await;
    let body = format!(
        "{ONE}\n  dify {{\n    version = \"1.13.3\"\n    external_database {{\n      host = \"db.internal\"\n      password_secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:db\"\n    }}\n    secret_env = {{ SMTP_PASSWORD = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:smtp\" }}\n  }}"
    );
    let ws = Workspace::new(&moto, &config(&net, &cert, &body)).env("TF_LOG_PROVIDER", "DEBUG");
    ws.init();
    let applied = ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let state = std::fs::read_to_string(ws.dir.path().join("terraform.tfstate")).unwrap();
    let show = ws.ok(&["show", "-json"]).stdout;
    ws.ok(&["plan", "-out=plan.bin", "-input=false"]);
    let plan = ws.ok(&["show", "-json", "plan.bin"]).stdout;
    let user_data = ws.outputs()["stack"]["value"]["rendered_user_data"].as_str().unwrap().to_string();
    let script = terraform_provider_dify::boot::BOOTSTRAP_SCRIPT;
    for (what, text) in [("state", state.as_str()), ("show -json", &show), ("plan JSON", &plan), ("DEBUG logs", &applied.stderr), ("user data", &user_data), ("bootstrap script", script)] {
        assert!(leaked(text).is_empty(), "{what} holds a secret value: {:?}", leaked(text));
    }
    assert!(applied.stderr.contains("AWS call"), "the DEBUG logs were captured");
    assert!(user_data.contains("DIFY_DB_PASSWORD_SECRET_ARN='arn:aws:secretsmanager"), "only the secret's ARN travels");
    assert!(user_data.contains("SMTP_PASSWORD=arn:aws:secretsmanager:us-east-1:123456789012:secret:smtp"), "secret_env: only ARNs travel");

    ws.write("main.tf", &config(&net, &cert, &format!("{ONE}\n  dify {{\n    version = \"1.13.3\"\n    env = {{ SECRET_KEY = \"mine\" }}\n  }}")));
    let out = ws.run(&["validate"]);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains("dify.env[\"SECRET_KEY\"]") && out.flat().contains("CONSOLE_WEB_URL"), "{}", out.all());
}

/// The before-replace snapshots of `volume`, newest first.
async fn before_replace_snapshots(ec2: &aws_sdk_ec2::Client, volume: &str) -> Vec<aws_sdk_ec2::types::Snapshot> {
    use aws_sdk_ec2::types::Filter;
    let out = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(Filter::builder().name("tag:dify:snapshot-of").values(volume).build())
        .filters(Filter::builder().name("tag:dify:reason").values("before-replace").build())
        .send()
        .await
        .unwrap();
    out.snapshots().to_vec()
}

#[tokio::test]
async fn an_upgrade_snapshots_the_data_volume_between_stop_and_detach_and_keeps_the_newest() {
    let moto = Moto::start();
    let up = applied_with(&moto, "  snapshots_to_keep = 1", "1.13.3").await;
    let (ec2, volume) = (&up.ec2, up.volume.as_str());
    let unrelated = ec2.create_snapshot().volume_id(volume).description("a manual backup").send().await.unwrap().snapshot_id.unwrap();

    up.to("1.14.0");
    up.proxy.clear_calls();
    let applied = up.ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let calls = up.operations();
    let (stop, snapshot, detach) = (position(&calls, "ec2:StopInstances"), position(&calls, "ec2:CreateSnapshot"), position(&calls, "ec2:DetachVolume"));
    assert!(stop < snapshot && snapshot < detach, "stop, snapshot, then detach: {calls:?}");
    let first = before_replace_snapshots(ec2, volume).await;
    assert_eq!(first.len(), 1, "one before-replace snapshot");
    let snap = &first[0];
    let snap_id = snap.snapshot_id().unwrap().to_string();
    assert_eq!(snap.volume_id(), Some(volume), "of the data volume");
    let tags: std::collections::BTreeMap<_, _> = snap.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
    assert_eq!(tags.get("dify:stack"), Some(&"dify-app"));
    assert!(tags.get("Name").is_some_and(|n| n.contains("before-replace")), "{tags:?}");
    assert!(applied.flat().contains(&format!("Pre-replace snapshot {snap_id} of data volume ({volume})")), "the apply reports the snapshot:\n{}", applied.all());
    up.ws.assert_no_changes();

    up.to("1.15.0");
    up.ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let second = before_replace_snapshots(ec2, volume).await;
    assert_eq!(second.len(), 1, "snapshots_to_keep = 1 keeps only the newest");
    assert_ne!(second[0].snapshot_id(), Some(snap_id.as_str()), "the older one was deleted");
    let manual = ec2.describe_snapshots().snapshot_ids(&unrelated).send().await.unwrap();
    assert_eq!(manual.snapshots().len(), 1, "a snapshot the provider did not take is never deleted");
}

#[tokio::test]
async fn a_failed_snapshot_stops_the_replacement_before_the_detach_and_can_be_turned_off() {
    let moto = Moto::start();
    let up = applied_at(&moto, "1.13.3").await;
    let (ec2, volume) = (&up.ec2, up.volume.as_str());
    up.to("1.14.0");
    up.proxy.clear_calls();
    up.proxy.add_rule(Rule::Fail { operation: "ec2:CreateSnapshot".into(), status: 403, code: "UnauthorizedOperation".into(), times: 1 });
    let out = up.ws.run(&["apply", "-auto-approve", "-input=false"]);
    assert_ne!(out.code, 0);
    let flat = out.flat();
    assert!(flat.contains(volume) && flat.contains("ec2:CreateSnapshot") && flat.contains("snapshot_before_replace = false") && flat.contains("rolled back"), "{}", out.all());
    assert_eq!(up.proxy.count("ec2:DetachVolume"), 0, "nothing was detached");
    assert_eq!((up.proxy.count("ec2:RunInstances"), up.proxy.count("ec2:TerminateInstances")), (1, 1), "the pre-warmed replacement was terminated");
    up.old_serves().await;
    up.rerun_upgrades().await;
    assert_eq!(before_replace_snapshots(ec2, volume).await.len(), 1);

    up.ws.write("main.tf", &config(&up.net, &up.cert, &versioned_with("  snapshot_before_replace = false", "1.15.0")));
    up.proxy.clear_calls();
    up.ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert_eq!(up.proxy.count("ec2:CreateSnapshot"), 0, "no snapshot when turned off");
    assert_eq!(up.proxy.count("ec2:DetachVolume"), 1, "the volume still moved");
    assert_eq!(before_replace_snapshots(ec2, volume).await.len(), 1);
}
