//! Rolling changes of a stack with two or more instances never leave zero serving targets, proven from the proxy's
//! call log; and a replacement without a data volume is healthy before the old instance leaves.

use std::collections::BTreeSet;

use crate::console;
use crate::ec2_stack::{config, setup, stack_instances, SHARED};
use crate::harness::{Moto, Workspace};
use crate::proxy::{AwsProxy, Call, Rule};

/// The instance ids a query-protocol call names: `Targets.member.N.Id` (ELBv2) or `InstanceId.N` (EC2).
fn named_instances(request: &str) -> Vec<String> {
    request
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| (k.starts_with("Targets.member.") && k.ends_with(".Id")) || k.starts_with("InstanceId."))
        .map(|(_, v)| v.to_string())
        .collect()
}

/// Replays the target registrations and the instance stops, starts and terminations of `calls`, in call order, from
/// the targets `initial` (registered and running), and fails at the first successful call after which no registered
/// target runs. Target groups are not told apart (the stacks tested have one).
pub fn never_without_a_serving_target(initial: &BTreeSet<String>, calls: &[Call]) -> Result<(), String> {
    let (mut registered, mut down) = (initial.clone(), BTreeSet::new());
    for (n, call) in calls.iter().enumerate().filter(|(_, c)| (200..300).contains(&c.status)) {
        let ids = named_instances(&call.request);
        match call.operation.rsplit(':').next().unwrap_or_default() {
            "RegisterTargets" => registered.extend(ids),
            "DeregisterTargets" => registered.retain(|id| !ids.contains(id)),
            "StopInstances" | "TerminateInstances" => down.extend(ids),
            "StartInstances" => down.retain(|id| !ids.contains(id)),
            _ => continue,
        }
        if registered.difference(&down).next().is_none() {
            return Err(format!("after call {n} ({} {}) no registered target runs; registered: {registered:?}", call.operation, named_instances(&call.request).join(",")));
        }
    }
    Ok(())
}

fn call(operation: &str, request: &str) -> Call {
    let now = std::time::Instant::now();
    Call { operation: operation.into(), status: 200, request: request.into(), received: now, answered: now }
}

#[test]
fn the_replay_catches_a_moment_with_no_serving_target() {
    let initial: BTreeSet<String> = ["i-a", "i-b"].map(String::from).into();
    let tg = "TargetGroupArn=arn%3Atg";
    let rolling = [
        call("elasticloadbalancing:DeregisterTargets", &format!("Action=DeregisterTargets&{tg}&Targets.member.1.Id=i-a")),
        call("ec2:StopInstances", "Action=StopInstances&InstanceId.1=i-a"),
        call("ec2:StartInstances", "Action=StartInstances&InstanceId.1=i-a"),
        call("elasticloadbalancing:RegisterTargets", &format!("Action=RegisterTargets&{tg}&Targets.member.1.Id=i-a&Targets.member.1.Port=80")),
        call("elasticloadbalancing:DeregisterTargets", &format!("Action=DeregisterTargets&{tg}&Targets.member.1.Id=i-b")),
        call("ec2:TerminateInstances", "Action=TerminateInstances&InstanceId.1=i-b"),
    ];
    assert_eq!(never_without_a_serving_target(&initial, &rolling), Ok(()));
    // Both taken out before either comes back: the gap is found at the call that opened it.
    let mut gap = rolling.to_vec();
    gap.swap(3, 4);
    let found = never_without_a_serving_target(&initial, &gap).unwrap_err();
    assert!(found.starts_with("after call 3 (elasticloadbalancing:DeregisterTargets i-b)"), "{found}");
    // A registered target that was stopped does not serve either.
    let stopped = [call("ec2:StopInstances", "Action=StopInstances&InstanceId.1=i-a&InstanceId.2=i-b")];
    assert!(never_without_a_serving_target(&initial, &stopped).is_err());
    // A failed call changed nothing.
    let failed = Call { status: 400, ..stopped[0].clone() };
    assert_eq!(never_without_a_serving_target(&initial, &[failed]), Ok(()));
}

const TWO: &str = "  instance_count = 2\n  data_volume_ids = [dify_persistent_volume.a.id, dify_persistent_volume.c.id]";

/// A two-instance stack on shared services, applied through the proxy; its instance ids.
async fn two_instances(moto: &Moto) -> (aws_sdk_ec2::Client, AwsProxy, Workspace, BTreeSet<String>, impl Fn(&str) -> String) {
    let (ec2, net, cert) = setup(moto).await;
    let proxy = AwsProxy::start(&moto.endpoint());
    let body = move |extra: &str| config(&net, &cert, &format!("{TWO}\n{extra}\n{SHARED}"));
    let ws = Workspace::via(&proxy.endpoint(), &body(""));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let ids: BTreeSet<String> = stack_instances(&ec2, "dify-app").await.iter().filter_map(|i| i.instance_id()).map(str::to_string).collect();
    assert_eq!(ids.len(), 2);
    (ec2, proxy, ws, ids, body)
}

#[tokio::test]
async fn a_version_upgrade_of_two_instances_always_leaves_one_serving() {
    let moto = Moto::start();
    let (ec2, proxy, ws, before, body) = two_instances(&moto).await;
    ws.write("main.tf", &body("").replace("\"1.13.3\"", "\"1.14.0\""));
    proxy.add_rule(Rule::Console { text: console::prepared("1.14.0"), delay: std::time::Duration::from_secs(1) });
    proxy.clear_calls();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let after: BTreeSet<String> = stack_instances(&ec2, "dify-app").await.iter().filter_map(|i| i.instance_id()).map(str::to_string).collect();
    assert_eq!(after.len(), 2);
    assert!(after.is_disjoint(&before), "both replaced: {before:?} -> {after:?}");
    let calls = proxy.calls();
    assert_eq!(proxy.count("ec2:RunInstances"), 2);
    assert_eq!(never_without_a_serving_target(&before, &calls), Ok(()));
    ws.assert_no_changes();
}

#[tokio::test]
async fn an_instance_type_change_of_two_instances_always_leaves_one_serving() {
    let moto = Moto::start();
    let (ec2, proxy, ws, before, body) = two_instances(&moto).await;
    ws.write("main.tf", &body("  instance_type = \"t3.large\""));
    // Every target shows `initial` for a while from the first health read (the refresh): the first instance may leave
    // only once the other is seen healthy.
    let unhealthy_for = std::time::Duration::from_secs(10);
    proxy.add_rule(Rule::NotReadyFor { operation: "elasticloadbalancing:DescribeTargetHealth".into(), ready: "<State>healthy</State>".into(), not_ready: "<State>initial</State>".into(), delay: unhealthy_for });
    proxy.clear_calls();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let now = stack_instances(&ec2, "dify-app").await;
    assert!(now.iter().all(|i| i.instance_type().map(|t| t.as_str()) == Some("t3.large")), "both retyped");
    assert_eq!(proxy.count("ec2:StopInstances"), 2, "in place, one at a time");
    let calls = proxy.calls();
    assert_eq!(never_without_a_serving_target(&before, &calls), Ok(()));
    let healthy_at = proxy.readiness().first().expect("target health was read").ready_at;
    let first_out = calls.iter().find(|c| c.operation == "elasticloadbalancing:DeregisterTargets").expect("deregistered");
    assert!(first_out.received >= healthy_at, "the first instance left {:?} before the other was healthy", healthy_at - first_out.received);
    ws.assert_no_changes();
}

#[tokio::test]
async fn a_replacement_without_a_data_volume_is_healthy_before_the_old_instance_leaves() {
    let moto = Moto::start();
    let (ec2, net, cert) = setup(&moto).await;
    let proxy = AwsProxy::start(&moto.endpoint());
    let at = |version: &str| config(&net, &cert, &format!("  allow_data_loss = true\n  dify {{\n    version = \"{version}\"\n  }}"));
    let ws = Workspace::via(&proxy.endpoint(), &at("1.13.3"));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let old: BTreeSet<String> = stack_instances(&ec2, "dify-app").await.iter().filter_map(|i| i.instance_id()).map(str::to_string).collect();
    ws.write("main.tf", &at("1.14.0"));
    proxy.clear_calls();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let calls = proxy.calls();
    let operations: Vec<&str> = calls.iter().map(|c| c.operation.rsplit(':').next().unwrap()).collect();
    let steps = ["RunInstances", "RegisterTargets", "DeregisterTargets", "TerminateInstances"];
    let order: Vec<&str> = operations.iter().copied().filter(|o| steps.contains(o)).collect();
    assert_eq!(order, steps, "launched and registered, then the old one leaves: {operations:?}");
    let (registered, deregistered) = (operations.iter().position(|o| *o == "RegisterTargets").unwrap(), operations.iter().position(|o| *o == "DeregisterTargets").unwrap());
    assert!(operations[registered..deregistered].contains(&"DescribeTargetHealth"), "the new target was seen healthy before the old one left: {operations:?}");
    assert_eq!(proxy.count("ec2:GetConsoleOutput"), 0, "the health check is the readiness");
    assert_eq!(proxy.count("ec2:StopInstances"), 0, "nothing to stop before a volume moves");
    assert_eq!(never_without_a_serving_target(&old, &calls), Ok(()), "one instance, never none serving");
    ws.assert_no_changes();
}
