//! The dev/stg/prd env folders (examples/environments) planned and applied against the emulator, as a platform
//! team would run them: real module, real tfvars, only account, certificate and zone ids swapped for the emulator's.

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
    assert_eq!(json["instance_ids"]["value"].as_array().unwrap().len(), 1);

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
