//! The migration guide's steps on infrastructure built with the AWS SDK as the seed HCL module builds it: the plan
//! imports everything and creates or destroys nothing.

use aws_sdk_ec2::types::{IpPermission, Placement, UserIdGroupPair};
use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, Certificate, ProtocolEnum, RedirectActionConfig, RedirectActionStatusCodeEnum, TargetDescription};
use aws_sdk_route53::types::{AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType};

use crate::harness::{Moto, Workspace};
use crate::seed;

#[tokio::test]
async fn the_module_s_objects_are_adopted_without_create_or_destroy() {
    let moto = Moto::start();
    let (ec2, elb, r53) = (moto.ec2().await, moto.elbv2().await, moto.route53().await);
    let net = seed::network(&ec2, "legacy", "10.90").await;
    let cert = moto.certificate("dify.example.com");

    // As the module made them.
    let alb_sg = seed::legacy_alb_group(&ec2, &net.vpc_id, "dify-prd-alb-sg").await;
    let app_sg = ec2.create_security_group().group_name("dify-prd-app-sg").description("app").vpc_id(&net.vpc_id).send().await.unwrap().group_id.unwrap();
    ec2.authorize_security_group_ingress()
        .group_id(&app_sg)
        .ip_permissions(IpPermission::builder().ip_protocol("tcp").from_port(80).to_port(80).user_id_group_pairs(UserIdGroupPair::builder().group_id(&alb_sg).build()).build())
        .send()
        .await
        .unwrap();
    let az = net.private[0].2.clone();
    let volume = ec2
        .create_volume()
        .availability_zone(&az)
        .size(50)
        .volume_type(aws_sdk_ec2::types::VolumeType::Gp3)
        .encrypted(true)
        .tag_specifications(aws_sdk_ec2::types::TagSpecification::builder().resource_type(aws_sdk_ec2::types::ResourceType::Volume).tags(aws_sdk_ec2::types::Tag::builder().key("Name").value("dify-prd-data").build()).build())
        .send()
        .await
        .unwrap()
        .volume_id
        .unwrap();
    let ami = ec2.describe_images().owners("amazon").send().await.unwrap().images()[0].image_id().unwrap().to_string();
    let instance = ec2
        .run_instances()
        .image_id(ami)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Large)
        .min_count(1)
        .max_count(1)
        .subnet_id(&net.private[0].1)
        .security_group_ids(&app_sg)
        .placement(Placement::builder().availability_zone(&az).build())
        .tag_specifications(aws_sdk_ec2::types::TagSpecification::builder().resource_type(aws_sdk_ec2::types::ResourceType::Instance).tags(aws_sdk_ec2::types::Tag::builder().key("Name").value("dify-prd").build()).build())
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_string();
    ec2.attach_volume().volume_id(&volume).instance_id(&instance).device("/dev/sdf").send().await.unwrap();
    let lb = elb.create_load_balancer().name("dify-prd").subnets(&net.public[0].1).subnets(&net.public[1].1).security_groups(&alb_sg).send().await.unwrap();
    let lb = lb.load_balancers()[0].clone();
    let tg = elb.create_target_group().name("dify-prd-tg").protocol(ProtocolEnum::Http).port(80).vpc_id(&net.vpc_id).health_check_path("/").send().await.unwrap().target_groups()[0].target_group_arn().unwrap().to_string();
    elb.register_targets().target_group_arn(&tg).targets(TargetDescription::builder().id(&instance).port(80).build()).send().await.unwrap();
    elb.create_listener()
        .load_balancer_arn(lb.load_balancer_arn().unwrap())
        .protocol(ProtocolEnum::Https)
        .port(443)
        .certificates(Certificate::builder().certificate_arn(&cert).build())
        .ssl_policy("ELBSecurityPolicy-TLS13-1-2-2021-06")
        .default_actions(Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(&tg).build())
        .send()
        .await
        .unwrap();
    elb.create_listener()
        .load_balancer_arn(lb.load_balancer_arn().unwrap())
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(Action::builder().r#type(ActionTypeEnum::Redirect).redirect_config(RedirectActionConfig::builder().protocol("HTTPS").port("443").status_code(RedirectActionStatusCodeEnum::Http301).build()).build())
        .send()
        .await
        .unwrap();
    let zone = r53.create_hosted_zone().name("example.com").caller_reference("migration").send().await.unwrap().hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_string();
    let record = ResourceRecordSet::builder()
        .name("dify.example.com.")
        .r#type(RrType::A)
        .alias_target(AliasTarget::builder().hosted_zone_id(lb.canonical_hosted_zone_id().unwrap()).dns_name(lb.dns_name().unwrap()).evaluate_target_health(true).build().unwrap())
        .build()
        .unwrap();
    r53.change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(ChangeBatch::builder().changes(Change::builder().action(ChangeAction::Create).resource_record_set(record).build().unwrap()).build().unwrap())
        .send()
        .await
        .unwrap();

    // The guide's configuration and import blocks.
    let config = format!(
        r#"terraform {{
  required_providers {{
    dify = {{ source = "NAMESPACE/dify" }}
  }}
}}

provider "dify" {{}}

resource "dify_persistent_volume" "data" {{
  name              = "dify-prd-data"
  availability_zone = "{az}"
  size_gb           = 50
}}

resource "dify_alb" "this" {{
  name            = "dify-prd"
  vpc_id          = "{vpc}"
  subnet_ids      = ["{pub_a}", "{pub_c}"]
  certificate_arn = "{cert}"
  allowed_cidrs   = {{ office = ["203.0.113.10/32"] }}
}}

resource "dify_ec2_stack" "this" {{
  name                  = "dify-prd"
  subnet_ids            = ["{priv_a}"]
  instance_type         = "t3.large"
  alb_security_group_id = dify_alb.this.security_group_id
  target_group_arns     = [dify_alb.this.target_group_arn]
  data_volume_ids       = [dify_persistent_volume.data.id]
}}

resource "dify_dns_record" "this" {{
  zone_id = "{zone}"
  name    = "dify.example.com"
  alias {{
    dns_name = dify_alb.this.dns_name
    zone_id  = dify_alb.this.zone_id
  }}
}}

import {{
  to = dify_persistent_volume.data
  id = "{volume}"
}}

import {{
  to = dify_alb.this
  id = "{lb_arn}"
}}

import {{
  to = dify_ec2_stack.this
  id = "{instance}"
}}

import {{
  to = dify_dns_record.this
  id = "{zone}_dify.example.com_A"
}}
"#,
        vpc = net.vpc_id,
        pub_a = net.public[0].1,
        pub_c = net.public[1].1,
        priv_a = net.private[0].1,
        lb_arn = lb.load_balancer_arn().unwrap(),
    );
    let ws = Workspace::new(&moto, &config);
    ws.init();
    let plan = ws.ok(&["plan", "-input=false", "-no-color"]);
    let summary = plan.stdout.lines().find(|l| l.starts_with("Plan:")).unwrap_or_default().to_string();
    assert!(summary.starts_with("Plan: 4 to import, 0 to add,") && summary.ends_with("0 to destroy."), "{}", plan.stdout);
    assert!(!plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    ws.assert_no_changes();
    let still = ec2.describe_instances().instance_ids(&instance).send().await.unwrap();
    assert_eq!(still.reservations()[0].instances()[0].state().and_then(|s| s.name()).map(|n| n.as_str()), Some("running"), "the instance was adopted, not replaced");
}
