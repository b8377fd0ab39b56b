//! The dev/stg/prd env folders (examples/environments) planned and applied against the emulator, as a platform
//! team would run them: real module, real tfvars, only account, certificate and zone ids swapped for the emulator's.
//! And the internal folder (the runbook's private topology), with its zone, prefix list and Lambda group swapped in.

use aws_sdk_ec2::types::Filter;

use crate::harness::{namespace, root, Moto, Workspace, MOTO_ACCOUNT};
use crate::seed;

pub const REGION: &str = "ap-northeast-1";

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            let text = std::fs::read_to_string(entry.path()).unwrap().replace("difyops/dify", &format!("{}/dify", namespace()));
            std::fs::write(target, text).unwrap();
        }
    }
}

/// An env folder ready to run: the emulator seeded as its tfvars expect, the folder and the module copied into a
/// workspace whose AWS calls go to `endpoint`, initialised. Returns the workspace and the `-var`s swapping in the
/// emulator's account, certificate and zone.
pub async fn prepare(env: &str, cidr: &str, moto: &Moto, endpoint: &str) -> (Workspace, Vec<String>) {
    prepare_with(env, cidr, moto, endpoint, crate::harness::mirror()).await
}

/// `prepare` with the provider installed from another mirror (benchmarks).
pub async fn prepare_with(env: &str, cidr: &str, moto: &Moto, endpoint: &str, mirror: &std::path::Path) -> (Workspace, Vec<String>) {
    prepare_in(env, cidr, moto, Workspace::via_mirror(endpoint, "", mirror)).await
}

/// `prepare` in a workspace made by the caller (another Terraform: compat).
pub async fn prepare_in(env: &str, cidr: &str, moto: &Moto, ws: Workspace) -> (Workspace, Vec<String>) {
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config_in(REGION).await);
    let r53 = moto.route53().await;
    seed::network_named(&ec2, &format!("dify-{env}-vpc"), &format!("dify-{env}"), cidr, REGION).await;
    let zone = r53.create_hosted_zone().name("example.com").caller_reference(env).send().await.unwrap().hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_string();
    let cert = moto.certificate_in(REGION, &format!("dify-{env}.example.com"));
    std::fs::remove_file(ws.dir.path().join("main.tf")).unwrap();
    copy_tree(&root().join("examples/modules"), &ws.dir.path().join("modules"));
    copy_tree(&root().join(format!("examples/environments/{env}")), &ws.dir.path().join(format!("environments/{env}")));
    let vars = vec![format!("-var=aws_account_id={MOTO_ACCOUNT}"), format!("-var=certificate_arn={cert}"), format!("-var=hosted_zone_id={zone}")];
    let out = ws.run(&[&format!("-chdir=environments/{env}"), "init", "-input=false"]);
    assert_eq!(out.code, 0, "{}", out.all());
    (ws, vars)
}

/// Runs `terraform -chdir=environments/ENV ARGS [VARS]`.
pub fn in_env(ws: &Workspace, env: &str, args: &[&str], vars: &[String]) -> crate::harness::TfOutput {
    let mut all = vec![format!("-chdir=environments/{env}")];
    all.extend(args.iter().map(|s| s.to_string()));
    all.extend(vars.iter().cloned());
    ws.run(&all.iter().map(String::as_str).collect::<Vec<_>>())
}

async fn apply_environment(env: &str, cidr: &str) {
    let moto = Moto::start();
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config_in(REGION).await);
    let (ws, vars) = prepare(env, cidr, &moto, &moto.endpoint()).await;
    let ws = ws.env("TF_LOG_PROVIDER", "DEBUG");
    let chdir = format!("-chdir=environments/{env}");
    let with = |args: &[&str]| -> Vec<String> {
        let mut v = vec![chdir.clone()];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>| ws.run(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // The committed tfvars name other accounts: the account guard refuses to plan.
    let out = run(with(&["plan", "-input=false"]));
    assert_ne!(out.code, 0);
    assert!(out.flat().contains("Wrong AWS account"), "{env}: {}", out.all());

    let mut apply = with(&["apply", "-auto-approve", "-input=false"]);
    apply.extend(vars.iter().cloned());
    let out = run(apply);
    assert_eq!(out.code, 0, "{env} apply:\n{}", out.all());
    crate::security::audit_secrets(&ws, &format!("environments/{env}"), &vars, &out.stderr);
    let mut plan = with(&["plan", "-detailed-exitcode", "-input=false"]);
    plan.extend(vars.iter().cloned());
    let out = run(plan);
    assert_eq!(out.code, 0, "{env}: the plan after apply is empty:\n{}", out.all());
    let outputs = run(with(&["output", "-json"]));
    let json: serde_json::Value = serde_json::from_str(&outputs.stdout).unwrap();
    assert_eq!(json["url"]["value"], format!("https://dify-{env}.example.com").as_str());
    let count = if env == "prd" { 2 } else { 1 };
    assert_eq!(json["instance_ids"]["value"].as_array().unwrap().len(), count, "{env}: instances");
    assert_eq!(json["volume_ids"]["value"].as_array().unwrap().len(), count, "{env}: one data volume per instance");
    if env == "prd" {
        check_prd_is_highly_available(&moto, &json).await;
    }

    let volume = json["volume_ids"]["value"][0].as_str().unwrap().to_string();
    let v = &ec2.describe_volumes().volume_ids(&volume).send().await.unwrap().volumes()[0].clone();
    let expected = if env == "prd" { 50 } else { 20 };
    assert_eq!(v.size(), Some(expected));
    assert_eq!(v.attachments().len(), 1, "attached to the instance");
    assert!(v.tags().iter().any(|t| t.key() == Some("Environment") && t.value() == Some(env)), "default_tags applied");

    if env == "prd" {
        // Deletion protection guards production: destroy stops at the load balancer.
        let mut destroy = with(&["destroy", "-auto-approve", "-input=false"]);
        destroy.extend(vars.iter().cloned());
        let out = run(destroy);
        assert_ne!(out.code, 0);
        assert!(out.flat().contains("deletion protection"), "{}", out.all());
        return;
    }
    let mut destroy = with(&["destroy", "-auto-approve", "-input=false"]);
    destroy.extend(vars.iter().cloned());
    let out = run(destroy);
    assert_eq!(out.code, 0, "{env} destroy:\n{}", out.all());
    let instances = ec2.describe_instances().filters(Filter::builder().name("instance-state-name").values("running").values("stopped").build()).send().await.unwrap();
    assert!(instances.reservations().is_empty(), "no instance left");
    assert!(ec2.describe_volumes().volume_ids(&volume).send().await.map(|o| o.volumes().is_empty()).unwrap_or(true), "the volume is gone");
    let snaps = ec2.describe_snapshots().owner_ids("self").filters(Filter::builder().name("tag:dify:final-snapshot-of").values(&volume).build()).send().await.unwrap();
    assert_eq!(snaps.snapshots().len(), 1, "but its final snapshot remains");
}

/// prd's two instances run in two zones and share the stack's secret; its role policy lets them write only that one.
async fn check_prd_is_highly_available(moto: &Moto, json: &serde_json::Value) {
    let zones: std::collections::BTreeSet<&str> = json["availability_zones"]["value"].as_array().unwrap().iter().filter_map(|z| z.as_str()).collect();
    assert_eq!(zones.len(), 2, "two zones: {zones:?}");
    let sm = aws_sdk_secretsmanager::Client::new(&moto.sdk_config_in(REGION).await);
    let secret = sm.describe_secret().secret_id("dify/dify-prd/app-secrets").send().await.expect("prd's shared secret");
    assert_eq!(json["shared_secret_arn"]["value"], secret.arn().unwrap());
    assert!(secret.tags().iter().any(|t| t.key() == Some("dify:stack") && t.value() == Some("dify-prd")));
    assert!(secret.tags().iter().any(|t| t.key() == Some("Environment") && t.value() == Some("prd")), "default_tags on the secret");
    let policy: serde_json::Value = serde_json::from_str(json["instance_policy_json"]["value"].as_str().unwrap()).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    let put = statements.iter().find(|s| s["Action"] == serde_json::json!(["secretsmanager:PutSecretValue"])).expect("PutSecretValue");
    assert_eq!(put["Resource"], format!("arn:aws:secretsmanager:{REGION}:*:secret:dify/dify-prd/app-secrets-*"));
    assert!(statements.iter().any(|s| s["Resource"] == "arn:aws:s3:::dify-prd-files-333333333333/*"), "the bucket: {policy}");
}

#[tokio::test]
async fn dev_environment_applies_plans_clean_and_destroys() {
    apply_environment("dev", "10.13").await;
}

#[tokio::test]
async fn stg_environment_applies_plans_clean_and_destroys() {
    apply_environment("stg", "10.14").await;
}

#[tokio::test]
async fn prd_environment_applies_and_is_protected() {
    apply_environment("prd", "10.15").await;
}

/// `make demo` as a newcomer runs it: every step reports, the plan after apply is empty, the import adopts; with the
/// provider's DEBUG logs on, nothing it prints holds a secret.
#[test]
fn the_demo_runs_end_to_end_and_cleans_up() {
    let out = std::process::Command::new("bash")
        .arg(root().join("examples/demo/run.sh"))
        .env("DIFY_VENV", crate::harness::venv())
        .env("DIFY_PROVIDER_NAMESPACE", namespace())
        .env_remove("TF_LOG")
        .env("TF_LOG_PROVIDER", "DEBUG")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(logs.contains("AWS call"), "the demo ran without the provider's DEBUG logs");
    let found = crate::security::leaked(&format!("{text}{logs}"));
    assert!(found.is_empty(), "the demo printed secret values {found:?}");
    assert!(out.status.success(), "demo failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for line in ["Apply complete! Resources: 4 added", "No changes: the infrastructure matches the configuration.", "1 imported", "Destroy complete! Resources: 4 destroyed", "Final snapshot snap-"] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

/// The internal env folder (the runbook's private topology): the emulator seeded with what the folder finds by
/// name or takes as ids — the network, a Lambda's security group, CloudFront's prefix list and a private zone — then
/// applied, planned clean, checked and destroyed.
#[tokio::test]
async fn internal_environment_applies_plans_clean_and_destroys() {
    use aws_sdk_route53::types::{HostedZoneConfig, Vpc, VpcRegion};
    let moto = Moto::start();
    let cfg = moto.sdk_config_in(REGION).await;
    let (ec2, elb) = (aws_sdk_ec2::Client::new(&cfg), aws_sdk_elasticloadbalancingv2::Client::new(&cfg));
    let r53 = moto.route53().await;
    let net = seed::network_named(&ec2, "dify-internal-vpc", "dify-internal", "10.16", REGION).await;
    let lambda = ec2.create_security_group().group_name("dify-callers").description("Lambda calling Dify").vpc_id(&net.vpc_id).send().await.unwrap().group_id.unwrap();
    let cloudfront = ec2
        .create_managed_prefix_list()
        .prefix_list_name("com.amazonaws.global.cloudfront.origin-facing")
        .address_family("IPv4")
        .max_entries(55)
        .entries(aws_sdk_ec2::types::AddPrefixListEntry::builder().cidr("130.176.0.0/18").build())
        .send()
        .await
        .unwrap()
        .prefix_list
        .unwrap()
        .prefix_list_id
        .unwrap();
    let zone = r53
        .create_hosted_zone()
        .name("dify.internal")
        .caller_reference("internal")
        .hosted_zone_config(HostedZoneConfig::builder().private_zone(true).build())
        .vpc(Vpc::builder().vpc_id(&net.vpc_id).vpc_region(VpcRegion::from(REGION)).build())
        .send()
        .await
        .unwrap()
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string();

    let ws = Workspace::new(&moto, "").env("TF_LOG_PROVIDER", "DEBUG");
    std::fs::remove_file(ws.dir.path().join("main.tf")).unwrap();
    copy_tree(&root().join("examples/environments/internal"), &ws.dir.path().join("environments/internal"));
    let env = |args: &[&str], vars: &[String]| in_env(&ws, "internal", args, vars);
    assert_eq!(env(&["init", "-input=false"], &[]).code, 0);

    // The committed tfvars name another account: the account guard refuses to plan.
    let out = env(&["plan", "-input=false"], &[]);
    assert!(out.code != 0 && out.flat().contains("Wrong AWS account"), "{}", out.all());

    let vars = vec![format!("-var=aws_account_id={MOTO_ACCOUNT}"), format!("-var=lambda_security_group_id={lambda}"), format!("-var=cloudfront_prefix_list_id={cloudfront}"), format!("-var=private_zone_id={zone}")];
    let out = env(&["apply", "-auto-approve", "-input=false"], &vars);
    assert_eq!(out.code, 0, "internal apply:\n{}", out.all());
    assert!(!out.flat().contains("serves plain HTTP"), "an internal HTTP-only ALB does not warn:\n{}", out.all());
    crate::security::audit_secrets(&ws, "environments/internal", &vars, &out.stderr);
    let out = env(&["plan", "-detailed-exitcode", "-input=false"], &vars);
    assert_eq!(out.code, 0, "the plan after apply is empty:\n{}", out.all());

    let json: serde_json::Value = serde_json::from_str(&env(&["output", "-json"], &[]).stdout).unwrap();
    assert_eq!(json["internal_url"]["value"], "http://api.dify.internal");
    assert_eq!(json["instance_ids"]["value"].as_array().unwrap().len(), 1);
    let lbs = elb.describe_load_balancers().names("dify-internal").send().await.unwrap();
    let lb = &lbs.load_balancers()[0];
    assert_eq!(lb.scheme().map(|s| s.as_str()), Some("internal"));
    let lb_subnets: Vec<&str> = lb.availability_zones().iter().filter_map(|z| z.subnet_id()).collect();
    assert!(net.private.iter().all(|(_, id, _)| lb_subnets.contains(&id.as_str())), "in the private subnets: {lb_subnets:?}");
    let listeners = elb.describe_listeners().load_balancer_arn(lb.load_balancer_arn().unwrap()).send().await.unwrap();
    assert_eq!(listeners.listeners().iter().map(|l| l.port()).collect::<Vec<_>>(), vec![Some(80)], "HTTP only");
    let sg_id = json["alb_security_group_id"]["value"].as_str().unwrap();
    let sg = ec2.describe_security_groups().group_ids(sg_id).send().await.unwrap().security_groups()[0].clone();
    let rule = sg.ip_permissions().iter().find(|p| p.from_port() == Some(80)).expect("a rule on 80");
    assert_eq!(rule.user_id_group_pairs().iter().filter_map(|g| g.group_id()).collect::<Vec<_>>(), vec![lambda.as_str()], "Lambda's group");
    assert_eq!(rule.prefix_list_ids().iter().filter_map(|l| l.prefix_list_id()).collect::<Vec<_>>(), vec![cloudfront.as_str()], "CloudFront's list");
    assert!(rule.ip_ranges().is_empty() && rule.ipv6_ranges().is_empty(), "no CIDR");
    let records = r53.list_resource_record_sets().hosted_zone_id(&zone).send().await.unwrap();
    let alias = records.resource_record_sets().iter().find(|r| r.name() == "api.dify.internal.").and_then(|r| r.alias_target()).expect("the alias in the private zone");
    assert_eq!(alias.dns_name().trim_end_matches('.').to_lowercase(), lb.dns_name().unwrap().to_lowercase());

    let out = env(&["destroy", "-auto-approve", "-input=false"], &vars);
    assert_eq!(out.code, 0, "internal destroy:\n{}", out.all());
    assert!(elb.describe_load_balancers().send().await.unwrap().load_balancers().is_empty(), "no load balancer left");
    let instances = ec2.describe_instances().filters(Filter::builder().name("instance-state-name").values("running").values("stopped").build()).send().await.unwrap();
    assert!(instances.reservations().is_empty(), "no instance left");
    let records = r53.list_resource_record_sets().hosted_zone_id(&zone).send().await.unwrap();
    assert!(records.resource_record_sets().iter().all(|r| r.name() != "api.dify.internal."), "the alias is gone");
}
