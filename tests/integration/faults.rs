//! Convergence under faults: the dev environment applied, planned and destroyed with a fifth of AWS calls faulted
//! (throttling, 5xx, connection resets, latency) and stale reads after creates, across seeds. Every run converges
//! and leaves nothing behind. `make test-faults SEEDS=100` runs more seeds than `make test` (DIFY_FAULT_SEEDS).

use aws_sdk_ec2::types::Filter;

use crate::environments::{in_env, prepare, REGION};
use crate::harness::Moto;
use crate::proxy::{AwsProxy, Chaos, Rule};

const FAULT_RATE: f64 = 0.2;

/// Everything the provider could have made, listed without the ownership tags (so nothing escapes the check).
async fn leftovers(moto: &Moto) -> Vec<String> {
    let cfg = moto.sdk_config_in(REGION).await;
    let ec2 = aws_sdk_ec2::Client::new(&cfg);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&cfg);
    let mut left = Vec::new();
    for v in ec2.describe_volumes().send().await.unwrap().volumes() {
        left.push(format!("volume {}", v.volume_id().unwrap_or_default()));
    }
    let live = ec2.describe_instances().filters(Filter::builder().name("instance-state-name").values("pending").values("running").values("stopping").values("stopped").build()).send().await.unwrap();
    for i in live.reservations().iter().flat_map(|r| r.instances()) {
        left.push(format!("instance {}", i.instance_id().unwrap_or_default()));
    }
    for g in ec2.describe_security_groups().send().await.unwrap().security_groups() {
        if g.group_name() != Some("default") {
            left.push(format!("security group {} {}", g.group_id().unwrap_or_default(), g.group_name().unwrap_or_default()));
        }
    }
    for t in ec2.describe_launch_templates().send().await.unwrap().launch_templates() {
        left.push(format!("launch template {}", t.launch_template_name().unwrap_or_default()));
    }
    for l in elb.describe_load_balancers().send().await.unwrap().load_balancers() {
        left.push(format!("load balancer {}", l.load_balancer_name().unwrap_or_default()));
    }
    for t in elb.describe_target_groups().send().await.unwrap().target_groups() {
        left.push(format!("target group {}", t.target_group_name().unwrap_or_default()));
    }
    let r53 = moto.route53().await;
    for z in r53.list_hosted_zones().send().await.unwrap().hosted_zones() {
        let sets = r53.list_resource_record_sets().hosted_zone_id(z.id()).send().await.unwrap();
        for r in sets.resource_record_sets().iter().filter(|r| !matches!(r.r#type().as_str(), "NS" | "SOA")) {
            left.push(format!("record {} {}", r.name(), r.r#type().as_str()));
        }
    }
    left
}

#[tokio::test]
async fn the_dev_environment_converges_under_faults_and_leaves_nothing_behind() {
    let seeds: u64 = std::env::var("DIFY_FAULT_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    for seed in 1..=seeds {
        let moto = Moto::start();
        let proxy = AwsProxy::start(&moto.endpoint());
        let (ws, vars) = prepare("dev", "10.13", &moto, &proxy.endpoint()).await;
        proxy.chaos(Some(Chaos { seed, rate: FAULT_RATE, stale_reads: 2 }));
        let apply = in_env(&ws, "dev", &["apply", "-auto-approve", "-input=false"], &vars);
        assert_eq!(apply.code, 0, "seed {seed}: apply did not converge under faults {:?}:\n{}", proxy.faults(), apply.all());
        let plan = in_env(&ws, "dev", &["plan", "-detailed-exitcode", "-input=false"], &vars);
        assert_eq!(plan.code, 0, "seed {seed}: the plan after apply is not empty:\n{}", plan.all());
        let destroy = in_env(&ws, "dev", &["destroy", "-auto-approve", "-input=false"], &vars);
        assert_eq!(destroy.code, 0, "seed {seed}: destroy failed under faults:\n{}", destroy.all());
        let faults = proxy.faults();
        assert!(faults.values().sum::<usize>() >= 5, "seed {seed}: faults were injected: {faults:?}");
        proxy.chaos(None);
        let left = leftovers(&moto).await;
        let not_seeded: Vec<&String> = left.iter().filter(|l| !l.starts_with("security group") || l.contains("dify")).collect();
        assert!(not_seeded.is_empty(), "seed {seed}: orphans {not_seeded:?}");
    }
}

#[tokio::test]
async fn an_access_denied_surfaces_at_once_with_aws_s_message_and_the_operation() {
    let moto = Moto::start();
    let proxy = AwsProxy::start(&moto.endpoint());
    let (ws, vars) = prepare("dev", "10.13", &moto, &proxy.endpoint()).await;
    proxy.add_rule(Rule::Fail { operation: "ec2:CreateVolume".into(), status: 403, code: "UnauthorizedOperation".into(), times: 100 });
    let out = in_env(&ws, "dev", &["apply", "-auto-approve", "-input=false"], &vars);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains("EC2 CreateVolume") && out.flat().contains("injected by the test proxy (UnauthorizedOperation)"), "{}", out.all());
    assert_eq!(proxy.count("ec2:CreateVolume"), 1, "not retried");
    assert!(proxy.calls().iter().any(|c| c.operation == "ec2:CreateVolume" && c.status == 403));
}
