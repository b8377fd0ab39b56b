//! Convergence under faults: the dev environment applied, planned and destroyed with a fifth of AWS calls faulted
//! (throttling, 5xx, connection resets, latency) and stale reads after creates, across seeds. Every run converges
//! and leaves nothing behind. The same environment's create, update and destroy interrupted at seeded random
//! changing calls, killing Terraform, the provider or both: the rerun converges with no duplicate and no orphan.
//! `make test-faults SEEDS=100` runs more seeds than `make test` (DIFY_FAULT_SEEDS).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;

use crate::environments::{in_env, prepare, REGION};
use crate::harness::Moto;
use crate::proxy::{next_random, AwsProxy, Chaos, Kill, KillPoint, Rule};

/// Seeds to run: DIFY_FAULT_SEEDS as a count (`10`: seeds 1 to 10) or a range (`15-15`: seed 15 alone, to replay
/// a failure), else seeds 1 to `default`.
fn seeds(default: u64) -> std::ops::RangeInclusive<u64> {
    let given = std::env::var("DIFY_FAULT_SEEDS").unwrap_or_default();
    match given.split_once('-') {
        Some((a, b)) => a.trim().parse().unwrap_or(1)..=b.trim().parse().unwrap_or(default),
        None => 1..=given.trim().parse().unwrap_or(default),
    }
}

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
    for seed in seeds(3) {
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
        let left = made_by_the_provider(&moto).await;
        assert!(left.is_empty(), "seed {seed}: orphans {left:?}");
    }
}

/// `leftovers` without the seeded network's security groups.
async fn made_by_the_provider(moto: &Moto) -> Vec<String> {
    leftovers(moto).await.into_iter().filter(|l| !l.starts_with("security group") || l.contains("dify")).collect()
}

/// How many objects of each kind the provider has made ("volume", "instance", "load balancer", …).
async fn inventory(moto: &Moto) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for object in made_by_the_provider(moto).await {
        let kind = ["volume", "instance", "security group", "launch template", "load balancer", "target group", "record"].into_iter().find(|k| object.starts_with(k)).unwrap_or("other");
        *kinds.entry(kind.to_string()).or_insert(0) += 1;
    }
    kinds
}

async fn final_snapshots(moto: &Moto) -> usize {
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config_in(REGION).await);
    let snaps = ec2.describe_snapshots().owner_ids("self").filters(Filter::builder().name("tag-key").values("dify:final-snapshot-of").build()).send().await.unwrap();
    snaps.snapshots().len()
}

/// The update: every resource changes (instance type: stop, modify, start; volume size; an office network removed;
/// the record renamed).
const UPDATE: &[&str] = &["-var=instance_type=t3.large", "-var=data_volume_size_gb=30", "-var=common_office_ip_list={office_tokyo=[\"203.0.113.10/32\"]}", "-var=domain_name=dify-dev2.example.com"];

/// `terraform -chdir=environments/dev ARGS VARS`, as strings for `AwsProxy::interrupt`.
fn dev_args(args: &[&str], vars: &[String], update: bool) -> Vec<String> {
    let mut all = vec!["-chdir=environments/dev".to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    all.extend(vars.iter().cloned());
    if update {
        all.extend(UPDATE.iter().map(|s| s.to_string()));
    }
    all
}

/// Terraform's local backend rewrites terraform.tfstate in place (truncate, then write), so killing Terraform in
/// that instant leaves the file empty or cut off: Terraform's own limit, not the provider's. Recovers as its docs
/// say, from the backup of the state the run began with (the rerun then reads every object back), and says so. An
/// empty file with no backup is not that: the local backend creates the file to lock it before a first run writes
/// any state, and Terraform reads it as no state (the rerun then has to adopt what the provider made).
fn restore_cut_off_state(ws: &crate::harness::Workspace, at: &str) {
    let path = ws.dir.path().join("environments/dev/terraform.tfstate");
    let backup = ws.dir.path().join("environments/dev/terraform.tfstate.backup");
    let Ok(state) = std::fs::read_to_string(&path) else { return };
    if serde_json::from_str::<serde_json::Value>(&state).is_err() && backup.exists() {
        eprintln!("{at}: Terraform was killed while writing its state ({} bytes left); restoring terraform.tfstate.backup", state.len());
        std::fs::copy(backup, &path).unwrap();
    }
}

#[tokio::test]
async fn applies_killed_at_random_points_converge_without_duplicates_or_orphans() {
    const PHASES: [(&str, &[&str], bool); 3] = [
        ("create", &["apply", "-auto-approve", "-input=false"], false),
        ("update", &["apply", "-auto-approve", "-input=false"], true),
        ("destroy", &["destroy", "-auto-approve", "-input=false"], true),
    ];
    // A reference run: how many changing calls each phase makes, how long it takes, and what exists after it.
    let moto = Moto::start();
    let proxy = AwsProxy::start(&moto.endpoint());
    let (ws, vars) = prepare("dev", "10.13", &moto, &proxy.endpoint()).await;
    let mut changes = Vec::new();
    let mut took = Vec::new();
    let mut expected = Vec::new();
    for (phase, args, update) in PHASES {
        proxy.clear_calls();
        let args = dev_args(args, &vars, update);
        let started = std::time::Instant::now();
        ws.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        took.push(started.elapsed());
        changes.push(proxy.calls().iter().filter(|c| !crate::proxy::is_read_only(&c.operation)).count());
        expected.push(inventory(&moto).await);
        assert!(changes.last().unwrap() > &3, "{phase} makes changes");
    }
    assert!(expected[2].is_empty(), "the reference run leaves nothing: {:?}", expected[2]);
    drop((ws, proxy, moto));

    for seed in seeds(2) {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let moto = Moto::start();
        let proxy = AwsProxy::start(&moto.endpoint());
        let (ws, vars) = prepare("dev", "10.13", &moto, &proxy.endpoint()).await;
        for (i, (phase, args, update)) in PHASES.into_iter().enumerate() {
            // Half the kills land right after a changing call (the emulator acted, nothing recorded it), half at a
            // random moment of the run (a wait, a read, Terraform writing state).
            let point = if next_random(&mut rng) % 2 == 0 {
                KillPoint::AtChange(1 + (next_random(&mut rng) as usize) % changes[i])
            } else {
                KillPoint::After(took[i].mul_f64(0.05 + (next_random(&mut rng) % 750) as f64 / 1000.0))
            };
            let kill = [Kill::Both, Kill::TerraformAlone, Kill::ProviderAlone][(next_random(&mut rng) % 3) as usize];
            let at = format!("seed {seed}, {phase} killed ({kill:?}) at {point:?} (of {} changing calls, {:?})", changes[i], took[i]);
            let args = dev_args(args, &vars, update);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let killed = proxy.interrupt(&ws, &args, point, kill);
            // A timed kill may come after a run faster than the reference; a kill at a changing call always lands.
            assert!(killed || matches!(point, KillPoint::After(_)), "{at}: the run finished first");
            if !killed {
                eprintln!("{at}: the run finished before the kill");
            }
            restore_cut_off_state(&ws, &at);
            let rerun = ws.run(&args);
            assert_eq!(rerun.code, 0, "{at}: the rerun did not converge:\n{}", rerun.all());
            if phase == "destroy" {
                let left = made_by_the_provider(&moto).await;
                assert!(left.is_empty(), "{at}: orphans {left:?}");
                assert_eq!(final_snapshots(&moto).await, 1, "{at}: one final snapshot, not two");
            } else {
                let plan = ws.run(&dev_args(&["plan", "-detailed-exitcode", "-input=false"], &vars, update).iter().map(String::as_str).collect::<Vec<_>>());
                assert_eq!(plan.code, 0, "{at}: state does not match the emulator:\n{}", plan.all());
                assert_eq!(inventory(&moto).await, expected[i], "{at}: duplicates or missing objects");
            }
        }
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
