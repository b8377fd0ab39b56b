//! The defaults an auditor checks, on the dev environment as applied: encrypted data, IMDSv2, no public IP, the app
//! port open only to the load balancer, no internet-wide ingress without opt-in, a TLS 1.3 policy, and deletion
//! protection in the production folder. And the secrets audit every applied example goes through.

use aws_sdk_ec2::types::Filter;

use crate::environments::{in_env, prepare, REGION};
use crate::harness::{root, Moto, Workspace, SECRET_ACCESS_KEY, SESSION_TOKEN};

/// Secret values in `text`: `NAME=value` with a literal value (not a shell expansion) for any secret generated on
/// the instance, and the AWS credentials every test run gets.
pub fn leaked(text: &str) -> Vec<String> {
    let mut found: Vec<String> = [SECRET_ACCESS_KEY, SESSION_TOKEN].iter().filter(|c| text.contains(*c)).map(|c| c.to_string()).collect();
    for name in terraform_provider_dify::boot::GENERATED_SECRETS {
        let needle = format!("{name}=");
        for (at, _) in text.match_indices(&needle) {
            let preceded = text[..at].chars().last().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let next = text[at + needle.len()..].chars().next();
            if !preceded && next.is_some_and(|c| !matches!(c, '$' | '"' | '\'' | '\\' | ' ' | '\n')) {
                found.push(text[at..(at + needle.len() + 12).min(text.len())].to_string());
            }
        }
    }
    found
}

/// The secrets audit of an applied configuration in `ws` (commands run with `chdir` and `vars`): its state, `show
/// -json`, a plan's JSON, the provider's DEBUG logs from the apply (`apply_stderr`, run with TF_LOG_PROVIDER=DEBUG)
/// and the rendered user data in state hold no secret value.
pub fn audit_secrets(ws: &Workspace, chdir: &str, vars: &[String], apply_stderr: &str) {
    let run = |args: &[&str]| {
        let mut all = vec![format!("-chdir={chdir}")];
        all.extend(args.iter().map(|s| s.to_string()));
        ws.ok(&all.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let state = run(&["state", "pull"]).stdout;
    let show = run(&["show", "-json"]).stdout;
    let mut plan_args = vec!["plan", "-out=audit.plan", "-input=false"];
    plan_args.extend(vars.iter().map(String::as_str));
    run(&plan_args);
    let plan = run(&["show", "-json", "audit.plan"]).stdout;
    assert!(apply_stderr.contains("AWS call"), "{chdir}: the apply ran without the provider's DEBUG logs");
    assert!(state.contains("rendered_user_data") || !state.contains("dify_ec2_stack"), "{chdir}: the user data is in the audited state");
    for (what, text) in [("state", state.as_str()), ("show -json", &show), ("plan JSON", &plan), ("DEBUG logs", apply_stderr)] {
        let found = leaked(text);
        assert!(found.is_empty(), "{chdir}: the {what} holds secret values {found:?}");
    }
}

#[tokio::test]
async fn the_dev_environment_meets_the_security_defaults() {
    let moto = Moto::start();
    let (ws, vars) = prepare("dev", "10.13", &moto, &moto.endpoint()).await;
    let out = in_env(&ws, "dev", &["apply", "-auto-approve", "-input=false"], &vars);
    assert_eq!(out.code, 0, "{}", out.all());
    let cfg = moto.sdk_config_in(REGION).await;
    let (ec2, elb) = (aws_sdk_ec2::Client::new(&cfg), aws_sdk_elasticloadbalancingv2::Client::new(&cfg));

    for v in ec2.describe_volumes().send().await.unwrap().volumes() {
        let name = v.tags().iter().find(|t| t.key() == Some("Name")).and_then(|t| t.value()).unwrap_or_default();
        if name.ends_with("-data") {
            assert_eq!(v.encrypted(), Some(true), "the data volume is encrypted");
        }
    }
    let instances = ec2.describe_instances().filters(Filter::builder().name("instance-state-name").values("running").build()).send().await.unwrap();
    let instance = instances.reservations()[0].instances()[0].clone();
    assert_eq!(instance.metadata_options().and_then(|m| m.http_tokens()).map(|t| t.as_str()), Some("required"), "IMDSv2 required");
    assert!(instance.public_ip_address().is_none(), "no public IP");
    let lt = ec2.describe_launch_template_versions().launch_template_name("dify-dev-lt").versions("$Default").send().await.unwrap();
    let data = lt.launch_template_versions()[0].launch_template_data().unwrap();
    assert_eq!(data.metadata_options().and_then(|m| m.http_tokens()).map(|t| t.as_str()), Some("required"));
    assert_eq!(data.network_interfaces()[0].associate_public_ip_address(), Some(false), "the template disables public IPs");
    assert!(data.block_device_mappings().iter().all(|b| b.ebs().and_then(|e| e.encrypted()) == Some(true)), "encrypted root volume");

    let lbs = elb.describe_load_balancers().send().await.unwrap();
    let lb = lbs.load_balancers()[0].clone();
    let alb_sg = lb.security_groups()[0].clone();
    let groups = ec2.describe_security_groups().send().await.unwrap();
    for g in groups.security_groups() {
        for p in g.ip_permissions() {
            assert!(p.ip_ranges().iter().all(|r| r.cidr_ip() != Some("0.0.0.0/0")), "no internet-wide ingress on {}", g.group_name().unwrap_or_default());
            assert!(p.ipv6_ranges().iter().all(|r| r.cidr_ipv6() != Some("::/0")));
            assert_ne!(p.from_port(), Some(22), "no SSH");
        }
        if g.group_name() == Some("dify-dev-instances") {
            assert_eq!(g.ip_permissions().len(), 1);
            let rule = &g.ip_permissions()[0];
            assert_eq!((rule.from_port(), rule.to_port()), (Some(80), Some(80)));
            assert_eq!(rule.user_id_group_pairs()[0].group_id(), Some(alb_sg.as_str()), "the app port only from the load balancer");
        }
    }
    let listeners = elb.describe_listeners().load_balancer_arn(lb.load_balancer_arn().unwrap()).send().await.unwrap();
    let https = listeners.listeners().iter().find(|l| l.port() == Some(443)).expect("HTTPS listener");
    assert!(https.ssl_policy().unwrap_or_default().contains("TLS13"), "TLS 1.3 policy");

    let prd = std::fs::read_to_string(root().join("examples/environments/prd/terraform.tfvars")).unwrap();
    assert!(prd.contains("deletion_protection = true"), "production protects its load balancer");
}

/// Creates an IAM instance profile in the emulator (the stack example names one; RunInstances needs it to exist).
fn instance_profile(moto: &Moto, name: &str) {
    let script = format!(
        "import boto3; iam = boto3.client('iam', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='t', aws_secret_access_key='t'); iam.create_instance_profile(InstanceProfileName='{name}')",
        moto.endpoint()
    );
    let out = std::process::Command::new(crate::harness::venv().join("bin/python")).args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "creating an instance profile: {}", String::from_utf8_lossy(&out.stderr));
}

/// Every resource example of the registry pages, applied as written (only the account's ids swapped for the
/// emulator's), then put through the secrets audit and destroyed.
#[tokio::test]
async fn every_resource_example_applies_and_passes_the_secrets_audit() {
    const EXAMPLE_REGION: &str = "ap-northeast-1";
    for example in ["dify_persistent_volume", "dify_alb", "dify_ec2_stack", "dify_dns_record"] {
        let moto = Moto::start();
        let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config_in(EXAMPLE_REGION).await);
        let net = crate::seed::network_named(&ec2, "dify-prd-vpc", "dify-prd", "10.20", EXAMPLE_REGION).await;
        let zone = moto.route53().await.create_hosted_zone().name("example.com").caller_reference(example).send().await.unwrap().hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_string();
        let cert = moto.certificate_in(EXAMPLE_REGION, "dify.example.com");
        instance_profile(&moto, "dify-ssm");
        let text = std::fs::read_to_string(root().join(format!("examples/resources/{example}/resource.tf")))
            .unwrap()
            .replace("arn:aws:acm:ap-northeast-1:111111111111:certificate/0a1b2c3d-1111-2222-3333-444455556666", &cert)
            .replace("vpc-0123456789abcdef0", &net.vpc_id)
            .replace("subnet-0aaaaaaaaaaaaaaaa", &net.public[0].1)
            .replace("subnet-0cccccccccccccccc", &net.public[1].1)
            .replace("Z0123456789ABCDEFGHIJ", &zone)
            // The example protects production; the test needs to clean up.
            .replace("deletion_protection = true", "deletion_protection = false");
        // Through the AWS proxy: it answers Data Lifecycle Manager (the volume example's backup schedule) itself,
        // as moto has no DLM, and forwards everything else to the emulator.
        let proxy = crate::proxy::AwsProxy::start(&moto.endpoint());
        let ws = Workspace::via(&proxy.endpoint(), &format!("terraform {{\n  required_providers {{\n    dify = {{ source = \"NAMESPACE/dify\" }}\n  }}\n}}\nprovider \"dify\" {{\n  region = \"{EXAMPLE_REGION}\"\n}}\n{text}"))
            .env("TF_LOG_PROVIDER", "DEBUG");
        if text.contains("dify-volumes.img") {
            // A small raw image with a little data in it.
            let mut image = vec![0u8; 4 << 20];
            image[1 << 20..(1 << 20) + 4096].fill(0xAB);
            std::fs::write(ws.dir.path().join("dify-volumes.img"), image).unwrap();
        }
        ws.init();
        let applied = ws.run(&["apply", "-auto-approve", "-input=false"]);
        assert_eq!(applied.code, 0, "{example}: the example does not apply:\n{}", applied.all());
        audit_secrets(&ws, ".", &[], &applied.stderr);
        let destroyed = ws.run(&["destroy", "-auto-approve", "-input=false"]);
        assert_eq!(destroyed.code, 0, "{example}: {}", destroyed.all());
    }
}
