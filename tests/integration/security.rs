//! The defaults an auditor checks, on the dev environment as applied: encrypted data, IMDSv2, no public IP, the app
//! port open only to the load balancer, no internet-wide ingress without opt-in, a TLS 1.3 policy, and deletion
//! protection in the production folder.

use aws_sdk_ec2::types::Filter;

use crate::environments::{in_env, prepare, REGION};
use crate::harness::{root, Moto};

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
