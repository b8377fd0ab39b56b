//! Acceptance tests of `dify_alb` through real Terraform against the emulator.

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange};
use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, Certificate, ProtocolEnum};

use crate::harness::{Moto, Workspace};
use crate::seed::{self, SeededNetwork};

fn config(net: &SeededNetwork, body: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    dify = {{ source = "NAMESPACE/dify" }}
  }}
}}

provider "dify" {{}}

resource "dify_alb" "this" {{
  vpc_id     = "{}"
  subnet_ids = ["{}", "{}"]
{body}
}}

output "alb" {{
  value = dify_alb.this
}}
"#,
        net.vpc_id, net.public[0].1, net.public[1].1
    )
}

fn basic(cert: &str) -> String {
    format!(
        r#"  name            = "dify-dev"
  certificate_arn = "{cert}"
  allowed_cidrs = {{
    office_a = ["203.0.113.10/32"]
    office_b = ["198.51.100.0/24", "2001:db8::/48"]
  }}
  tags = {{ Environment = "dev" }}"#
    )
}

async fn alb_count(elb: &aws_sdk_elasticloadbalancingv2::Client) -> usize {
    elb.describe_load_balancers().send().await.unwrap().load_balancers().len()
}

async fn groups_named(ec2: &aws_sdk_ec2::Client, name: &str) -> usize {
    ec2.describe_security_groups().filters(Filter::builder().name("group-name").values(name).build()).send().await.unwrap().security_groups().len()
}

#[tokio::test]
async fn alb_lifecycle_creates_a_dify_ready_entry_imports_by_arn_and_name_and_destroys_everything() {
    let moto = Moto::start();
    let (ec2, elb) = (moto.ec2().await, moto.elbv2().await);
    let net = seed::network(&ec2, "dify-dev", "10.20").await;
    let cert = moto.certificate("dify.example.com");
    let ws = Workspace::new(&moto, &config(&net, &basic(&cert)));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let out = &ws.outputs()["alb"]["value"];
    let arn = out["arn"].as_str().unwrap().to_string();
    assert!(out["url"].as_str().unwrap().starts_with("https://"));

    let lb = &elb.describe_load_balancers().load_balancer_arns(&arn).send().await.unwrap().load_balancers()[0].clone();
    assert_eq!(lb.scheme().map(|s| s.as_str()), Some("internet-facing"));
    let attrs: std::collections::HashMap<String, String> =
        elb.describe_load_balancer_attributes().load_balancer_arn(&arn).send().await.unwrap().attributes().iter().map(|a| (a.key().unwrap().to_string(), a.value().unwrap().to_string())).collect();
    assert_eq!(attrs["idle_timeout.timeout_seconds"], "600");
    assert_eq!(attrs["routing.http.drop_invalid_header_fields.enabled"], "true");

    let listeners = elb.describe_listeners().load_balancer_arn(&arn).send().await.unwrap().listeners().to_vec();
    let https = listeners.iter().find(|l| l.port() == Some(443)).expect("HTTPS listener");
    assert_eq!(https.protocol(), Some(&ProtocolEnum::Https));
    assert_eq!(https.ssl_policy(), Some("ELBSecurityPolicy-TLS13-1-2-2021-06"));
    assert_eq!(https.certificates()[0].certificate_arn(), Some(cert.as_str()));
    let http = listeners.iter().find(|l| l.port() == Some(80)).expect("HTTP listener");
    let redirect = http.default_actions()[0].redirect_config().expect("redirect");
    assert_eq!(redirect.protocol(), Some("HTTPS"));
    assert_eq!(redirect.status_code().map(|s| s.as_str()), Some("HTTP_301"));

    let tg_arn = out["target_group_arn"].as_str().unwrap();
    let tg = &elb.describe_target_groups().target_group_arns(tg_arn).send().await.unwrap().target_groups()[0].clone();
    assert_eq!(tg.health_check_path(), Some("/console/api/ping"));
    assert_eq!(tg.matcher().and_then(|m| m.http_code()), Some("200"));
    assert_eq!((tg.health_check_interval_seconds(), tg.health_check_timeout_seconds(), tg.healthy_threshold_count(), tg.unhealthy_threshold_count()), (Some(15), Some(5), Some(2), Some(3)));

    let sg = &ec2.describe_security_groups().group_ids(out["security_group_id"].as_str().unwrap()).send().await.unwrap().security_groups()[0].clone();
    for port in [443, 80] {
        let rule = sg.ip_permissions().iter().find(|p| p.from_port() == Some(port)).unwrap_or_else(|| panic!("no rule on {port}"));
        let ranges: Vec<(&str, &str)> = rule.ip_ranges().iter().map(|r| (r.cidr_ip().unwrap(), r.description().unwrap_or_default())).collect();
        assert!(ranges.contains(&("203.0.113.10/32", "office_a")) && ranges.contains(&("198.51.100.0/24", "office_b")), "{port}: {ranges:?}");
        assert!(!ranges.iter().any(|(c, _)| *c == "0.0.0.0/0"));
        assert_eq!(rule.ipv6_ranges()[0].cidr_ipv6(), Some("2001:db8::/48"));
    }
    ws.assert_no_changes();

    // A second certificate (SNI) is added in place.
    let second = moto.certificate("chat.example.com");
    ws.write("main.tf", &config(&net, &format!("{}\n  additional_certificate_arns = [\"{second}\"]", basic(&cert))));
    let plan = ws.ok(&["plan", "-input=false"]);
    assert!(plan.stdout.contains("0 to add, 1 to change, 0 to destroy"), "{}", plan.stdout);
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let listed = elb.describe_listener_certificates().listener_arn(https.listener_arn().unwrap()).send().await.unwrap();
    assert!(listed.certificates().iter().any(|c| c.certificate_arn() == Some(second.as_str())), "{listed:?}");
    ws.assert_no_changes();

    for id in [arn.as_str(), "dify-dev"] {
        ws.ok(&["state", "rm", "dify_alb.this"]);
        ws.ok(&["import", "-input=false", "dify_alb.this", id]);
        ws.assert_no_changes();
    }

    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    assert_eq!(alb_count(&elb).await, 0, "no load balancer left");
    assert!(elb.describe_target_groups().send().await.unwrap().target_groups().is_empty(), "no target group left");
    assert_eq!(groups_named(&ec2, "dify-dev-alb").await, 0, "no security group left");
}

#[tokio::test]
async fn an_alb_made_outside_terraform_is_imported_and_a_matching_config_plans_no_changes() {
    let moto = Moto::start();
    let (ec2, elb) = (moto.ec2().await, moto.elbv2().await);
    let net = seed::network(&ec2, "legacy", "10.30").await;
    let cert = moto.certificate("dify.example.org");
    // As an older HCL module made it.
    let sg = seed::legacy_alb_group(&ec2, &net.vpc_id, "legacy-alb-sg").await;
    let lb = elb
        .create_load_balancer()
        .name("legacy-dify")
        .subnets(&net.public[0].1)
        .subnets(&net.public[1].1)
        .security_groups(&sg)
        .send()
        .await
        .unwrap()
        .load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let tg = elb
        .create_target_group()
        .name("legacy-dify-tg")
        .protocol(ProtocolEnum::Http)
        .port(80)
        .vpc_id(&net.vpc_id)
        .health_check_path("/")
        .health_check_interval_seconds(30)
        .health_check_timeout_seconds(5)
        .healthy_threshold_count(5)
        .unhealthy_threshold_count(2)
        .matcher(aws_sdk_elasticloadbalancingv2::types::Matcher::builder().http_code("200").build())
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let attr = |k: &str, v: &str| aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute::builder().key(k).value(v).build();
    elb.modify_target_group_attributes().target_group_arn(&tg).attributes(attr("deregistration_delay.timeout_seconds", "300")).send().await.unwrap();
    let lb_attr = |k: &str, v: &str| aws_sdk_elasticloadbalancingv2::types::LoadBalancerAttribute::builder().key(k).value(v).build();
    elb.modify_load_balancer_attributes()
        .load_balancer_arn(&lb)
        .attributes(lb_attr("idle_timeout.timeout_seconds", "60"))
        .attributes(lb_attr("routing.http.drop_invalid_header_fields.enabled", "false"))
        .send()
        .await
        .unwrap();
    elb.create_listener()
        .load_balancer_arn(&lb)
        .protocol(ProtocolEnum::Https)
        .port(443)
        .certificates(Certificate::builder().certificate_arn(&cert).build())
        .ssl_policy("ELBSecurityPolicy-TLS13-1-2-2021-06")
        .default_actions(Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(&tg).build())
        .send()
        .await
        .unwrap();
    elb.create_listener()
        .load_balancer_arn(&lb)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::Redirect)
                .redirect_config(
                    aws_sdk_elasticloadbalancingv2::types::RedirectActionConfig::builder()
                        .protocol("HTTPS")
                        .port("443")
                        .status_code(aws_sdk_elasticloadbalancingv2::types::RedirectActionStatusCodeEnum::Http301)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();

    // A configuration describing that same ALB plans no changes after the import.
    let legacy = format!(
        "  name = \"legacy-dify\"\n  certificate_arn = \"{cert}\"\n  allowed_cidrs = {{ office = [\"203.0.113.10/32\"] }}\n  idle_timeout = 60\n  drop_invalid_header_fields = false\n  deregistration_delay = 300\n  health_check {{\n    path = \"/\"\n    interval = 30\n    healthy_threshold = 5\n    unhealthy_threshold = 2\n  }}"
    );
    let ws = Workspace::new(&moto, &config(&net, &legacy));
    ws.init();
    ws.ok(&["import", "-input=false", "dify_alb.this", &lb]);
    let out = ws.ok(&["show", "-no-color"]);
    assert!(out.stdout.contains(&tg) && out.stdout.contains(&sg), "import discovered the target group and the security group:\n{}", out.stdout);
    ws.assert_no_changes();

    // Dify's defaults differ from the legacy settings: in-place updates, never a replacement.
    ws.write("main.tf", &config(&net, &format!("  name = \"legacy-dify\"\n  certificate_arn = \"{cert}\"\n  allowed_cidrs = {{ office = [\"203.0.113.10/32\"] }}")));
    let plan = ws.ok(&["plan", "-input=false"]);
    assert!(plan.stdout.contains("0 to add, 1 to change, 0 to destroy"), "{}", plan.stdout);
    assert!(plan.stdout.contains("\"/\" -> \"/console/api/ping\"") && plan.stdout.contains("60 -> 600"), "{}", plan.stdout);
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    ws.assert_no_changes();

    // terraform query finds it.
    ws.write("find.tfquery.hcl", "list \"dify_alb\" \"found\" {\n  provider = dify\n  config {\n    name_prefix = \"legacy-\"\n  }\n}\n");
    let q = ws.ok(&["query", "-no-color"]);
    assert!(q.stdout.contains("legacy-dify") && q.stdout.contains(&lb), "{}", q.all());
    std::fs::remove_file(ws.dir.path().join("find.tfquery.hcl")).unwrap();
    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    assert_eq!(alb_count(&elb).await, 0);
}

#[tokio::test]
async fn drift_of_every_part_is_planned_and_restored() {
    let moto = Moto::start();
    let (ec2, elb) = (moto.ec2().await, moto.elbv2().await);
    let net = seed::network(&ec2, "drift", "10.40").await;
    let cert = moto.certificate("drift.example.com");
    let ws = Workspace::new(&moto, &config(&net, &basic(&cert)));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let out = ws.outputs()["alb"]["value"].clone();

    // A listener deleted outside Terraform.
    elb.delete_listener().listener_arn(out["https_listener_arn"].as_str().unwrap()).send().await.unwrap();
    ws.plan_shows_then_apply_restores(&["https_listener_arn", "1 to change"]);

    // A security group rule revoked outside Terraform.
    let sg = out["security_group_id"].as_str().unwrap();
    ec2.revoke_security_group_ingress()
        .group_id(sg)
        .ip_permissions(IpPermission::builder().ip_protocol("tcp").from_port(443).to_port(443).ip_ranges(IpRange::builder().cidr_ip("203.0.113.10/32").build()).build())
        .send()
        .await
        .unwrap();
    ws.plan_shows_then_apply_restores(&["office_a", "1 to change"]);

    // An attribute changed outside Terraform.
    elb.modify_load_balancer_attributes()
        .load_balancer_arn(out["arn"].as_str().unwrap())
        .attributes(aws_sdk_elasticloadbalancingv2::types::LoadBalancerAttribute::builder().key("idle_timeout.timeout_seconds").value("60").build())
        .send()
        .await
        .unwrap();
    ws.plan_shows_then_apply_restores(&["idle_timeout", "60 -> 600"]);

    // The load balancer itself deleted outside Terraform, its target group and security group left: replaced, the
    // destroy half removing what was left.
    elb.delete_load_balancer().load_balancer_arn(out["arn"].as_str().unwrap()).send().await.unwrap();
    ws.plan_shows_then_apply_restores(&["must be replaced", "1 to add, 0 to change, 1 to destroy"]);
    assert_eq!(alb_count(&elb).await, 1);
    assert_eq!(groups_named(&ec2, "dify-dev-alb").await, 1, "the security group was adopted, not duplicated");
}

#[tokio::test]
async fn validation_names_the_attribute_and_deletion_protection_is_never_bypassed() {
    let moto = Moto::start();
    let (ec2, elb) = (moto.ec2().await, moto.elbv2().await);
    let net = seed::network(&ec2, "rules", "10.50").await;
    let cases: &[(&str, &str)] = &[
        ("  name = \"this-name-is-far-too-long-for-an-alb\"", "1–32"),
        ("  name = \"bad_name\"", "letters, digits and hyphens"),
        ("  name = \"ok\"\n  allowed_cidrs = { office = [\"203.0.113.300/32\"] }", "office"),
        ("  name = \"ok\"\n  allowed_cidrs = { office = [\"10.0.0.1/8\"] }", "10.0.0.0/8"),
        ("  name = \"ok\"\n  allowed_cidrs = { everyone = [\"0.0.0.0/0\"] }", "allow_internet = true"),
        ("  name = \"ok\"\n  health_check {\n    timeout = 20\n  }", "shorter than its interval"),
    ];
    for (body, message) in cases {
        let ws = Workspace::new(&moto, &config(&net, body));
        ws.init();
        let out = ws.run(&["validate"]);
        assert_ne!(out.code, 0, "{body:?} must fail");
        assert!(out.flat().contains(message), "{body:?}: expected {message:?} in:\n{}", out.all());
    }
    let one_subnet = config(&net, "  name = \"ok\"").replace(&format!(", \"{}\"", net.public[1].1), "");
    let ws = Workspace::new(&moto, &one_subnet);
    ws.init();
    let out = ws.run(&["validate"]);
    assert!(out.code != 0 && out.flat().contains("at least two subnets"), "{}", out.all());
    let same_zone = config(&net, "  name = \"ok\"").replace(&net.public[1].1, &net.private[0].1);
    let ws = Workspace::new(&moto, &same_zone);
    ws.init();
    let out = ws.run(&["plan", "-input=false"]);
    assert!(out.code != 0 && out.flat().contains("all in one availability zone"), "{}", out.all());
    assert_eq!(alb_count(&elb).await, 0, "nothing was created by bad input");

    // Open to the internet on purpose; deletion protection refuses destroy until it is turned off.
    let ws = Workspace::new(&moto, &config(&net, "  name = \"open\"\n  allow_internet = true\n  allowed_cidrs = { everyone = [\"0.0.0.0/0\"] }\n  deletion_protection = true"));
    ws.init();
    let applied = ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert!(applied.flat().contains("without a certificate serves plain HTTP"), "certificate-less mode warns:\n{}", applied.all());
    let out = ws.outputs()["alb"]["value"].clone();
    assert!(out["url"].as_str().unwrap().starts_with("http://"));
    assert!(out["https_listener_arn"].is_null());
    let http = elb.describe_listeners().listener_arns(out["http_listener_arn"].as_str().unwrap()).send().await.unwrap().listeners()[0].clone();
    assert_eq!(http.default_actions()[0].r#type(), Some(&ActionTypeEnum::Forward), "without a certificate port 80 forwards");
    ws.assert_no_changes();
    let destroy = ws.run(&["destroy", "-auto-approve", "-input=false"]);
    assert_ne!(destroy.code, 0);
    assert!(destroy.flat().contains("deletion protection") && destroy.flat().contains("deletion_protection = false"), "{}", destroy.all());
    assert_eq!(alb_count(&elb).await, 1, "still there");
    ws.write("main.tf", &config(&net, "  name = \"open\"\n  allow_internet = true\n  allowed_cidrs = { everyone = [\"0.0.0.0/0\"] }\n  deletion_protection = false"));
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    assert_eq!(alb_count(&elb).await, 0);
}

#[tokio::test]
async fn a_target_port_change_replaces_the_target_group_before_destroying_the_old_one() {
    let moto = Moto::start();
    let (ec2, elb) = (moto.ec2().await, moto.elbv2().await);
    let net = seed::network(&ec2, "port", "10.60").await;
    let cert = moto.certificate("port.example.com");
    let ws = Workspace::new(&moto, &config(&net, &basic(&cert)));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let before = ws.outputs()["alb"]["value"].clone();
    ws.write("main.tf", &config(&net, &format!("{}\n  target_port = 8080", basic(&cert))));
    let plan = ws.ok(&["plan", "-input=false"]);
    assert!(plan.stdout.contains("0 to add, 1 to change, 0 to destroy"), "the load balancer stays:\n{}", plan.stdout);
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let after = ws.outputs()["alb"]["value"].clone();
    assert_eq!(before["arn"], after["arn"]);
    assert_ne!(before["target_group_arn"], after["target_group_arn"]);
    let groups = elb.describe_target_groups().send().await.unwrap().target_groups().to_vec();
    assert_eq!(groups.len(), 1, "the old target group is gone");
    assert_eq!(groups[0].port(), Some(8080));
    let https = elb.describe_listeners().listener_arns(after["https_listener_arn"].as_str().unwrap()).send().await.unwrap().listeners()[0].clone();
    assert_eq!(https.default_actions()[0].target_group_arn(), after["target_group_arn"].as_str(), "the listener forwards to the new group");
    ws.assert_no_changes();
}

#[tokio::test]
async fn an_interrupted_create_is_resumed_without_duplicates() {
    use crate::proxy::AwsProxy;
    let moto = Moto::start();
    let (ec2, elb) = (moto.ec2().await, moto.elbv2().await);
    let net = seed::network(&ec2, "resume", "10.70").await;
    let cert = moto.certificate("resume.example.com");
    let proxy = AwsProxy::start(&moto.endpoint());
    let ws = Workspace::via(&proxy.endpoint(), &config(&net, &basic(&cert)));
    ws.init();
    proxy.interrupt_after(&ws, &["apply", "-auto-approve", "-input=false"], "elasticloadbalancing:CreateTargetGroup");
    assert_eq!(alb_count(&elb).await, 1, "the first apply made the load balancer");
    ws.ok(&["apply", "-auto-approve", "-input=false", "-lock=false"]);
    assert_eq!(alb_count(&elb).await, 1, "no second load balancer");
    assert_eq!(elb.describe_target_groups().send().await.unwrap().target_groups().len(), 1, "no second target group");
    assert_eq!(groups_named(&ec2, "dify-dev-alb").await, 1, "no second security group");
    assert_eq!(proxy.count("elasticloadbalancing:CreateLoadBalancer"), 1);
    ws.assert_no_changes();
}

#[tokio::test]
async fn a_destroy_interrupted_after_the_load_balancer_went_finishes_on_the_next_destroy() {
    use crate::proxy::AwsProxy;
    let moto = Moto::start();
    let (ec2, elb) = (moto.ec2().await, moto.elbv2().await);
    let net = seed::network(&ec2, "halfgone", "10.71").await;
    let cert = moto.certificate("halfgone.example.com");
    let proxy = AwsProxy::start(&moto.endpoint());
    let ws = Workspace::via(&proxy.endpoint(), &config(&net, &basic(&cert)));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    proxy.interrupt_after(&ws, &["destroy", "-auto-approve", "-input=false"], "elasticloadbalancing:DeleteLoadBalancer");
    assert_eq!(alb_count(&elb).await, 0, "the load balancer went before the kill");
    ws.ok(&["destroy", "-auto-approve", "-input=false", "-lock=false"]);
    assert!(elb.describe_target_groups().send().await.unwrap().target_groups().is_empty(), "the target group was not left behind");
    assert_eq!(groups_named(&ec2, "dify-dev-alb").await, 0, "the security group was not left behind");
}

#[tokio::test]
async fn a_security_group_other_rules_still_name_is_not_deleted_and_the_destroy_says_which() {
    let moto = Moto::start();
    let (ec2, elb) = (moto.ec2().await, moto.elbv2().await);
    let net = seed::network(&ec2, "shared", "10.72").await;
    let cert = moto.certificate("shared.example.com");
    let ws = Workspace::new(&moto, &config(&net, &basic(&cert)));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let alb_sg = ws.outputs()["alb"]["value"]["security_group_id"].as_str().unwrap().to_string();
    // Another team's group allows traffic from the load balancer's group.
    let other = ec2.create_security_group().group_name("reporting").description("reporting").vpc_id(&net.vpc_id).send().await.unwrap().group_id.unwrap();
    let from_alb = aws_sdk_ec2::types::IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(9000)
        .to_port(9000)
        .user_id_group_pairs(aws_sdk_ec2::types::UserIdGroupPair::builder().group_id(&alb_sg).build())
        .build();
    ec2.authorize_security_group_ingress().group_id(&other).ip_permissions(from_alb.clone()).send().await.unwrap();

    let out = ws.run(&["destroy", "-auto-approve", "-input=false"]);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains(&format!("security group {alb_sg} was not deleted: the rules of {other} (reporting) still name it")), "{}", out.all());
    assert_eq!(groups_named(&ec2, "dify-dev-alb").await, 1, "the group is still there");
    assert_eq!(alb_count(&elb).await, 0, "the load balancer before it is gone");

    // Once the other rule is gone, the next destroy finishes what is left.
    ec2.revoke_security_group_ingress().group_id(&other).ip_permissions(from_alb).send().await.unwrap();
    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    assert_eq!(groups_named(&ec2, "dify-dev-alb").await, 0);
}

#[tokio::test]
async fn deleted_target_group_and_security_group_are_planned_and_restored() {
    let moto = Moto::start();
    let (ec2, elb) = (moto.ec2().await, moto.elbv2().await);
    let net = seed::network(&ec2, "parts", "10.45").await;
    let cert = moto.certificate("parts.example.com");
    let ws = Workspace::new(&moto, &config(&net, &basic(&cert)));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let out = ws.outputs()["alb"]["value"].clone();

    // AWS refuses to delete a target group a listener uses: the listeners go first, then the group.
    for l in ["https_listener_arn", "http_listener_arn"] {
        elb.delete_listener().listener_arn(out[l].as_str().unwrap()).send().await.unwrap();
    }
    elb.delete_target_group().target_group_arn(out["target_group_arn"].as_str().unwrap()).send().await.unwrap();
    ws.plan_shows_then_apply_restores(&["target_group_arn", "https_listener_arn", "1 to change"]);

    ec2.delete_security_group().group_id(out["security_group_id"].as_str().unwrap()).send().await.unwrap();
    ws.plan_shows_then_apply_restores(&["security_group_id", "1 to change"]);
    let now = ws.outputs()["alb"]["value"].clone();
    let lb = elb.describe_load_balancers().load_balancer_arns(now["arn"].as_str().unwrap()).send().await.unwrap().load_balancers()[0].clone();
    assert!(lb.security_groups().iter().any(|g| Some(g.as_str()) == now["security_group_id"].as_str()), "the load balancer uses the recreated group");
}

#[tokio::test]
async fn an_interrupted_update_converges_on_the_next_apply() {
    use crate::proxy::AwsProxy;
    let moto = Moto::start();
    let (ec2, elb) = (moto.ec2().await, moto.elbv2().await);
    let net = seed::network(&ec2, "upd", "10.75").await;
    let cert = moto.certificate("upd.example.com");
    let proxy = AwsProxy::start(&moto.endpoint());
    let ws = Workspace::via(&proxy.endpoint(), &config(&net, &basic(&cert)));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    // A target port change: the new target group is made, then everything dies before the listeners switch.
    ws.write("main.tf", &config(&net, &format!("{}\n  target_port = 8080", basic(&cert))));
    proxy.interrupt_after(&ws, &["apply", "-auto-approve", "-input=false"], "elasticloadbalancing:CreateTargetGroup");
    ws.ok(&["apply", "-auto-approve", "-input=false", "-lock=false"]);
    ws.assert_no_changes();
    let groups = elb.describe_target_groups().send().await.unwrap().target_groups().to_vec();
    assert_eq!(groups.len(), 1, "the half-made group was adopted and the old one removed: {:?}", groups.iter().map(|g| g.target_group_name()).collect::<Vec<_>>());
    assert_eq!(groups[0].port(), Some(8080));
}

/// A managed prefix list in the emulator, as CloudFront's origin-facing one is in a real account; returns its id.
async fn prefix_list(ec2: &aws_sdk_ec2::Client, name: &str, cidr: &str) -> String {
    use aws_sdk_ec2::types::AddPrefixListEntry;
    let out = ec2.create_managed_prefix_list().prefix_list_name(name).address_family("IPv4").max_entries(5).entries(AddPrefixListEntry::builder().cidr(cidr).build()).send().await.unwrap();
    out.prefix_list().unwrap().prefix_list_id().unwrap().to_string()
}

/// The prefix lists a security group lets in on `port`.
async fn prefix_lists_on(ec2: &aws_sdk_ec2::Client, sg: &str, port: i32) -> std::collections::BTreeSet<String> {
    let groups = ec2.describe_security_groups().group_ids(sg).send().await.unwrap();
    groups.security_groups()[0].ip_permissions().iter().filter(|p| p.from_port() == Some(port)).flat_map(|p| p.prefix_list_ids()).filter_map(|l| l.prefix_list_id().map(str::to_string)).collect()
}

#[tokio::test]
async fn allowed_prefix_lists_are_let_in_changed_in_place_restored_after_drift_and_imported() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = seed::network(&ec2, "plists", "10.76").await;
    let cert = moto.certificate("plists.example.com");
    let cloudfront = prefix_list(&ec2, "com.amazonaws.global.cloudfront.origin-facing", "130.176.0.0/18").await;
    let partner = prefix_list(&ec2, "partner", "192.0.2.0/24").await;
    let body = |lists: &str| format!("  name = \"dify-cf\"\n  certificate_arn = \"{cert}\"\n  allowed_prefix_list_ids = [{lists}]");
    let ws = Workspace::new(&moto, &config(&net, &body(&format!("\"{cloudfront}\""))));
    ws.init();
    let applied = ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert!(!applied.flat().contains("lets no one in"), "a prefix list is a source:\n{}", applied.all());
    let sg = ws.outputs()["alb"]["value"]["security_group_id"].as_str().unwrap().to_string();
    assert_eq!(prefix_lists_on(&ec2, &sg, 443).await, [cloudfront.clone()].into());
    assert!(prefix_lists_on(&ec2, &sg, 80).await.is_empty(), "not on the redirect port: a list counts as its max_entries rules");
    ws.assert_no_changes();

    // A second list is added in place.
    ws.write("main.tf", &config(&net, &body(&format!("\"{cloudfront}\", \"{partner}\""))));
    let plan = ws.ok(&["plan", "-input=false"]);
    assert!(plan.stdout.contains("0 to add, 1 to change, 0 to destroy") && plan.stdout.contains(&partner), "{}", plan.stdout);
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert_eq!(prefix_lists_on(&ec2, &sg, 443).await, [cloudfront.clone(), partner.clone()].into());
    ws.assert_no_changes();

    // A rule revoked outside Terraform shows in the plan and is restored.
    ec2.revoke_security_group_ingress()
        .group_id(&sg)
        .ip_permissions(IpPermission::builder().ip_protocol("tcp").from_port(443).to_port(443).prefix_list_ids(aws_sdk_ec2::types::PrefixListId::builder().prefix_list_id(&partner).build()).build())
        .send()
        .await
        .unwrap();
    assert_eq!(prefix_lists_on(&ec2, &sg, 443).await, [cloudfront.clone()].into(), "the drift happened");
    ws.plan_shows_then_apply_restores(&[&partner, "1 to change"]);
    assert_eq!(prefix_lists_on(&ec2, &sg, 443).await, [cloudfront.clone(), partner.clone()].into());

    // Import reads the lists back: the config plans no changes.
    ws.ok(&["state", "rm", "dify_alb.this"]);
    ws.ok(&["import", "-input=false", "dify_alb.this", "dify-cf"]);
    ws.assert_no_changes();

    // Removing one revokes it.
    ws.write("main.tf", &config(&net, &body(&format!("\"{partner}\""))));
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert_eq!(prefix_lists_on(&ec2, &sg, 443).await, [partner.clone()].into());
    ws.assert_no_changes();

    // Bad input names the attribute.
    ws.write("main.tf", &config(&net, &body("\"sg-0123456789abcdef0\"")));
    let out = ws.run(&["validate"]);
    assert!(out.code != 0 && out.flat().contains("allowed_prefix_list_ids") && out.flat().contains("pl-"), "{}", out.all());
    ws.write("main.tf", &config(&net, &body(&format!("\"{partner}\""))));
    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
}

#[tokio::test]
async fn an_internal_alb_serves_http_without_a_warning_and_an_internet_facing_one_still_warns() {
    let moto = Moto::start();
    let (ec2, elb) = (moto.ec2().await, moto.elbv2().await);
    let net = seed::network(&ec2, "inside", "10.77").await;
    let lambda = ec2.create_security_group().group_name("lambda").description("lambda").vpc_id(&net.vpc_id).send().await.unwrap().group_id.unwrap();

    // Internet-facing, no certificate, no source: both warnings.
    let ws = Workspace::new(&moto, &config(&net, "  name = \"outside\""));
    ws.init();
    let plan = ws.ok(&["plan", "-input=false"]);
    assert!(plan.flat().contains("without a certificate serves plain HTTP"), "{}", plan.all());
    assert!(plan.flat().contains("lets no one in") && plan.flat().contains("allowed_prefix_list_ids"), "{}", plan.all());

    // Internal, HTTP only, reached by a Lambda's security group: neither.
    let cloudfront = prefix_list(&ec2, "com.amazonaws.global.cloudfront.origin-facing", "130.176.0.0/18").await;
    let body = format!("  name = \"inside\"\n  internal = true\n  allowed_security_group_ids = [\"{lambda}\"]\n  allowed_prefix_list_ids = [\"{cloudfront}\"]");
    let ws = Workspace::new(&moto, &config(&net, &body).replace(&net.public[0].1, &net.private[0].1).replace(&net.public[1].1, &net.private[1].1));
    ws.init();
    let applied = ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert!(!applied.all().contains("Warning"), "an internal HTTP-only ALB warns about nothing:\n{}", applied.all());
    let out = ws.outputs()["alb"]["value"].clone();
    assert!(out["url"].as_str().unwrap().starts_with("http://"));
    let lb = elb.describe_load_balancers().load_balancer_arns(out["arn"].as_str().unwrap()).send().await.unwrap().load_balancers()[0].clone();
    assert_eq!(lb.scheme().map(|s| s.as_str()), Some("internal"));
    let sg = &ec2.describe_security_groups().group_ids(out["security_group_id"].as_str().unwrap()).send().await.unwrap().security_groups()[0].clone();
    let rule = sg.ip_permissions().iter().find(|p| p.from_port() == Some(80)).expect("a rule on 80");
    assert_eq!(rule.user_id_group_pairs()[0].group_id(), Some(lambda.as_str()));
    assert_eq!(prefix_lists_on(&ec2, sg.group_id().unwrap(), 80).await, [cloudfront].into(), "without a certificate the list is let in on 80");
    assert!(sg.ip_permissions().iter().all(|p| p.from_port() != Some(443)), "nothing on 443 without a certificate");
    ws.assert_no_changes();
    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    assert_eq!(alb_count(&elb).await, 0);
}
