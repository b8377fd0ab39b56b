//! Acceptance tests of `dify_ec2_stack` through real Terraform against the emulator.

use aws_sdk_ec2::types::Filter;

use crate::harness::{Moto, Workspace};
use crate::proxy::AwsProxy;
use crate::seed::{self, SeededNetwork};

/// A network, an ALB and one data volume per private subnet, then the stack under test.
pub fn config(net: &SeededNetwork, cert: &str, stack_body: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    dify = {{ source = "NAMESPACE/dify" }}
  }}
}}

provider "dify" {{}}

resource "dify_persistent_volume" "a" {{
  name              = "data-a"
  availability_zone = "{az_a}"
  final_snapshot    = false
}}

resource "dify_persistent_volume" "c" {{
  name              = "data-c"
  availability_zone = "{az_c}"
  final_snapshot    = false
}}

resource "dify_alb" "web" {{
  name            = "dify-web"
  vpc_id          = "{vpc}"
  subnet_ids      = ["{pub_a}", "{pub_c}"]
  certificate_arn = "{cert}"
  allowed_cidrs   = {{ office = ["203.0.113.10/32"] }}
}}

resource "dify_ec2_stack" "app" {{
  name                  = "dify-app"
  subnet_ids            = ["{priv_a}", "{priv_c}"]
  alb_security_group_id = dify_alb.web.security_group_id
  target_group_arns     = [dify_alb.web.target_group_arn]
  iam_instance_profile  = "dify-ssm"
{stack_body}
}}

output "stack" {{
  value = dify_ec2_stack.app
}}
"#,
        az_a = net.private[0].2,
        az_c = net.private[1].2,
        vpc = net.vpc_id,
        pub_a = net.public[0].1,
        pub_c = net.public[1].1,
        priv_a = net.private[0].1,
        priv_c = net.private[1].1,
    )
}

pub const ONE: &str = "  data_volume_ids = [dify_persistent_volume.a.id]";
pub const SHARED: &str = r#"  dify {
    version          = "1.13.3"
    vector_store_url = "https://vectors.internal.example.com"
    external_database {
      host                = "db.internal.example.com"
      password_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dify-db"
    }
    external_redis {
      host = "redis.internal.example.com"
    }
    s3_storage {
      bucket = "dify-files"
    }
  }"#;

pub async fn stack_instances(ec2: &aws_sdk_ec2::Client, name: &str) -> Vec<aws_sdk_ec2::types::Instance> {
    ec2.describe_instances()
        .filters(Filter::builder().name("tag:dify:stack").values(name).build())
        .filters(Filter::builder().name("instance-state-name").values("pending").values("running").values("stopping").values("stopped").build())
        .send()
        .await
        .unwrap()
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .cloned()
        .collect()
}

pub fn tag<'a>(i: &'a aws_sdk_ec2::types::Instance, key: &str) -> Option<&'a str> {
    i.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

pub async fn setup(moto: &Moto) -> (aws_sdk_ec2::Client, SeededNetwork, String) {
    let ec2 = moto.ec2().await;
    let net = seed::network(&ec2, "stack", "10.80").await;
    let cert = moto.certificate("app.example.com");
    (ec2, net, cert)
}

#[tokio::test]
async fn stack_lifecycle_attaches_registers_imports_and_destroys_leaving_only_the_volumes() {
    let moto = Moto::start();
    let (ec2, net, cert) = setup(&moto).await;
    let elb = moto.elbv2().await;
    let ws = Workspace::new(&moto, &config(&net, &cert, ONE));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let out = ws.outputs()["stack"]["value"].clone();
    let instances = stack_instances(&ec2, "dify-app").await;
    assert_eq!(instances.len(), 1);
    let i = &instances[0];
    assert_eq!(tag(i, "Name"), Some("dify-app"));
    assert_eq!(i.subnet_id(), Some(net.private[0].1.as_str()));
    assert!(i.public_ip_address().is_none(), "no public IP");
    assert_eq!(i.metadata_options().and_then(|m| m.http_tokens()).map(|t| t.as_str()), Some("required"), "IMDSv2 required");
    let data = i.block_device_mappings().iter().find(|m| m.device_name() == Some("/dev/sdf")).expect("data volume attached as /dev/sdf");
    let volume_id = data.ebs().unwrap().volume_id().unwrap().to_string();
    assert_eq!(data.ebs().unwrap().delete_on_termination(), Some(false), "never DeleteOnTermination");
    assert_eq!(out["data_volume_ids"][0], volume_id.as_str());
    let tg = out["target_group_arns"][0].as_str().unwrap();
    let health = elb.describe_target_health().target_group_arn(tg).send().await.unwrap();
    assert_eq!(health.target_health_descriptions()[0].target().unwrap().id(), i.instance_id(), "registered behind the ALB");
    let sg = &ec2.describe_security_groups().group_ids(out["security_group_id"].as_str().unwrap()).send().await.unwrap().security_groups()[0].clone();
    assert_eq!(sg.ip_permissions().len(), 1, "one ingress rule");
    let rule = &sg.ip_permissions()[0];
    assert_eq!((rule.from_port(), rule.to_port()), (Some(80), Some(80)));
    assert!(rule.ip_ranges().is_empty(), "no CIDR ingress, no SSH");
    assert_eq!(rule.user_id_group_pairs()[0].group_id(), out["alb_security_group_id"].as_str());
    ws.assert_no_changes();

    let ids = out["instance_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect::<Vec<_>>().join(",");
    for id in ["dify-app", ids.as_str()] {
        ws.ok(&["state", "rm", "dify_ec2_stack.app"]);
        ws.ok(&["import", "-input=false", "dify_ec2_stack.app", id]);
        ws.assert_no_changes();
    }

    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    assert!(stack_instances(&ec2, "dify-app").await.is_empty(), "instances terminated");
    let groups = ec2.describe_security_groups().filters(Filter::builder().name("group-name").values("dify-app-instances").build()).send().await.unwrap();
    assert!(groups.security_groups().is_empty(), "security group deleted");
    let templates = ec2.describe_launch_templates().send().await.unwrap();
    assert!(templates.launch_templates().is_empty(), "launch template deleted");
}

#[tokio::test]
async fn instance_type_changes_in_place_deregistering_stopping_modifying_starting_registering() {
    let moto = Moto::start();
    let (ec2, net, cert) = setup(&moto).await;
    let proxy = AwsProxy::start(&moto.endpoint());
    let ws = Workspace::via(&proxy.endpoint(), &config(&net, &cert, ONE));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let before = stack_instances(&ec2, "dify-app").await[0].instance_id().unwrap().to_string();
    ws.write("main.tf", &config(&net, &cert, &format!("{ONE}\n  instance_type = \"t3.large\"\n  tags = {{ Team = \"ai\" }}")));
    let plan = ws.ok(&["plan", "-input=false"]);
    assert!(plan.stdout.contains("0 to add, 1 to change, 0 to destroy"), "{}", plan.stdout);
    proxy.clear_calls();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let after = &stack_instances(&ec2, "dify-app").await[0];
    assert_eq!(after.instance_id(), Some(before.as_str()), "same instance");
    assert_eq!(after.instance_type().map(|t| t.as_str()), Some("t3.large"));
    assert_eq!(tag(after, "Team"), Some("ai"), "tags change in place");
    let order: Vec<String> = proxy
        .calls()
        .into_iter()
        .map(|c| c.operation)
        .filter(|o| ["DeregisterTargets", "StopInstances", "ModifyInstanceAttribute", "StartInstances", "RegisterTargets"].iter().any(|x| o.ends_with(x)))
        .collect();
    assert_eq!(
        order,
        vec!["elasticloadbalancing:DeregisterTargets", "ec2:StopInstances", "ec2:ModifyInstanceAttribute", "ec2:StartInstances", "elasticloadbalancing:RegisterTargets"],
        "the safe order"
    );
    ws.assert_no_changes();
}

#[tokio::test]
async fn a_type_change_killed_after_the_instance_was_modified_is_finished_and_the_instance_serves_again() {
    let moto = Moto::start();
    let (ec2, net, cert) = setup(&moto).await;
    let elb = moto.elbv2().await;
    let proxy = AwsProxy::start(&moto.endpoint());
    let ws = Workspace::via(&proxy.endpoint(), &config(&net, &cert, ONE));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    ws.write("main.tf", &config(&net, &cert, &format!("{ONE}\n  instance_type = \"t3.large\"")));
    // Deregistered, stopped and retyped, then everything dies: the new type is there, the instance is not serving.
    proxy.interrupt_after(&ws, &["apply", "-auto-approve", "-input=false"], "ec2:ModifyInstanceAttribute");
    let stopped = stack_instances(&ec2, "dify-app").await.remove(0);
    assert_eq!(stopped.state().and_then(|s| s.name()).map(|n| n.as_str()), Some("stopped"));
    let plan = ws.ok(&["plan", "-input=false", "-lock=false"]);
    assert!(plan.stdout.contains("target_group_arns") && plan.stdout.contains("1 to change"), "the plan shows it is not registered:\n{}", plan.stdout);
    ws.ok(&["apply", "-auto-approve", "-input=false", "-lock=false"]);
    let now = stack_instances(&ec2, "dify-app").await.remove(0);
    assert_eq!(now.instance_id(), stopped.instance_id(), "the same instance");
    assert_eq!(now.state().and_then(|s| s.name()).map(|n| n.as_str()), Some("running"), "started again");
    assert_eq!(now.instance_type().map(|t| t.as_str()), Some("t3.large"));
    let tg = ws.outputs()["stack"]["value"]["target_group_arns"][0].as_str().unwrap().to_string();
    let health = elb.describe_target_health().target_group_arn(&tg).send().await.unwrap();
    assert!(health.target_health_descriptions().iter().any(|d| d.target().and_then(|t| t.id()) == now.instance_id()), "registered again");
    ws.assert_no_changes();
}

#[tokio::test]
async fn scaling_one_two_one_needs_shared_services_and_keeps_the_volumes() {
    let moto = Moto::start();
    let (ec2, net, cert) = setup(&moto).await;
    // Through the proxy: the shared services change the boot configuration, so instance 1 is replaced, and the
    // replacement's console readiness is the proxy's (the emulator's console never prints it).
    let proxy = AwsProxy::start(&moto.endpoint());
    let ws = Workspace::via(&proxy.endpoint(), &config(&net, &cert, ONE));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);

    // Two instances with Dify's bundled services: refused with the explanation, before anything changes.
    let two = "  instance_count = 2\n  data_volume_ids = [dify_persistent_volume.a.id, dify_persistent_volume.c.id]";
    ws.write("main.tf", &config(&net, &cert, two));
    let out = ws.run(&["plan", "-input=false"]);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains("split your data") && out.flat().contains("external_database"), "{}", out.all());

    ws.write("main.tf", &config(&net, &cert, &format!("{two}\n{SHARED}")));
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let mut instances = stack_instances(&ec2, "dify-app").await;
    instances.sort_by_key(|i| tag(i, "dify:index").unwrap().to_string());
    assert_eq!(instances.len(), 2);
    assert_eq!(tag(&instances[1], "Name"), Some("dify-app-2"));
    assert_eq!(instances[1].subnet_id(), Some(net.private[1].1.as_str()), "instance 2 in the second subnet");
    assert_eq!(instances[1].placement().unwrap().availability_zone(), Some(net.private[1].2.as_str()));
    // Scaling out made the shared secret the instances now name.
    let sm = moto.secretsmanager().await;
    let secret = sm.describe_secret().secret_id("dify/dify-app/app-secrets").send().await.expect("the shared secret");
    assert_eq!(ws.outputs()["stack"]["value"]["shared_secret_arn"], secret.arn().unwrap());
    ws.assert_no_changes();

    ws.write("main.tf", &config(&net, &cert, &format!("{ONE}\n{SHARED}")));
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let remaining = stack_instances(&ec2, "dify-app").await;
    assert_eq!(remaining.len(), 1);
    assert_eq!(tag(&remaining[0], "dify:index"), Some("0"), "the highest index was removed");
    let volumes = ec2.describe_volumes().filters(Filter::builder().name("tag:Name").values("data-c").build()).send().await.unwrap();
    assert_eq!(volumes.volumes().len(), 1, "the data volume of the removed instance survives");
    // Back to one instance: the secret is kept while the stack exists, and no longer named in the user data.
    let kept = sm.describe_secret().secret_id("dify/dify-app/app-secrets").send().await.unwrap();
    assert!(kept.deleted_date().is_none(), "kept");
    let out = ws.outputs()["stack"]["value"].clone();
    assert_eq!(out["shared_secret_arn"], secret.arn().unwrap());
    assert!(!out["rendered_user_data"].as_str().unwrap().contains("DIFY_SHARED_SECRETS"), "a single instance keeps its secrets on its volume");
    ws.assert_no_changes();
}

#[tokio::test]
async fn a_terminated_instance_is_planned_back_and_bad_placements_are_refused() {
    let moto = Moto::start();
    let (ec2, net, cert) = setup(&moto).await;
    let ws = Workspace::new(&moto, &config(&net, &cert, ONE));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let old = stack_instances(&ec2, "dify-app").await[0].instance_id().unwrap().to_string();
    ec2.terminate_instances().instance_ids(&old).send().await.unwrap();
    let plan = ws.ok(&["plan", "-input=false"]);
    assert!(plan.stdout.contains("1 to change"), "{}", plan.stdout);
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let now = &stack_instances(&ec2, "dify-app").await[0];
    assert_ne!(now.instance_id(), Some(old.as_str()));
    assert_eq!(now.subnet_id(), Some(net.private[0].1.as_str()), "same subnet");
    assert!(now.block_device_mappings().iter().any(|m| m.device_name() == Some("/dev/sdf")), "same data volume attached");
    ws.assert_no_changes();

    // A security group rule removed outside Terraform is named in the plan and restored.
    let out = ws.outputs()["stack"]["value"].clone();
    let sg = out["security_group_id"].as_str().unwrap();
    let alb_sg = out["alb_security_group_id"].as_str().unwrap();
    ec2.revoke_security_group_ingress()
        .group_id(sg)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(80)
                .to_port(80)
                .user_id_group_pairs(aws_sdk_ec2::types::UserIdGroupPair::builder().group_id(alb_sg).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    ws.plan_shows_then_apply_restores(&["+ alb_security_group_id", "1 to change"]);

    // The instance deregistered from its target group outside Terraform: the plan names the group, apply registers
    // the instance again.
    let elb = moto.elbv2().await;
    let tg = out["target_group_arns"][0].as_str().unwrap();
    let id = out["instance_ids"][0].as_str().unwrap();
    elb.deregister_targets().target_group_arn(tg).targets(aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder().id(id).build()).send().await.unwrap();
    let plan = ws.ok(&["plan", "-input=false"]);
    assert!(plan.stdout.contains("target_group_arns") && plan.stdout.contains(tg) && plan.stdout.contains("1 to change"), "{}", plan.stdout);
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let health = elb.describe_target_health().target_group_arn(tg).send().await.unwrap();
    assert!(health.target_health_descriptions().iter().any(|d| d.target().and_then(|t| t.id()) == Some(id)), "registered again");
    ws.assert_no_changes();

    // A volume in the other zone is refused at plan, naming it.
    ws.write("main.tf", &config(&net, &cert, "  data_volume_ids = [dify_persistent_volume.c.id]"));
    let out = ws.run(&["plan", "-input=false"]);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains(&format!("is in {}, but instance 1 goes to {}", net.private[1].2, net.private[0].2)), "{}", out.all());
}

#[tokio::test]
async fn an_interrupted_create_is_resumed_without_twin_instances() {
    let moto = Moto::start();
    let (ec2, net, cert) = setup(&moto).await;
    let proxy = AwsProxy::start(&moto.endpoint());
    let ws = Workspace::via(&proxy.endpoint(), &config(&net, &cert, ONE));
    ws.init();
    proxy.interrupt_after(&ws, &["apply", "-auto-approve", "-input=false"], "ec2:RunInstances");
    assert_eq!(stack_instances(&ec2, "dify-app").await.len(), 1, "the emulator launched the instance");
    ws.ok(&["apply", "-auto-approve", "-input=false", "-lock=false"]);
    assert_eq!(stack_instances(&ec2, "dify-app").await.len(), 1, "no twin");
    assert_eq!(proxy.count("ec2:RunInstances"), 1);
    ws.assert_no_changes();
}

#[tokio::test]
async fn deleted_launch_template_and_security_group_are_planned_and_restored() {
    let moto = Moto::start();
    let (ec2, net, cert) = setup(&moto).await;
    let ws = Workspace::new(&moto, &config(&net, &cert, ONE));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let out = ws.outputs()["stack"]["value"].clone();
    let instance = out["instance_ids"][0].as_str().unwrap().to_string();

    ec2.delete_launch_template().launch_template_id(out["launch_template_id"].as_str().unwrap()).send().await.unwrap();
    ws.plan_shows_then_apply_restores(&["launch_template_id", "1 to change"]);

    ec2.delete_security_group().group_id(out["security_group_id"].as_str().unwrap()).send().await.unwrap();
    ws.plan_shows_then_apply_restores(&["security_group_id", "1 to change"]);
    let now = ws.outputs()["stack"]["value"].clone();
    assert_eq!(now["instance_ids"][0].as_str(), Some(instance.as_str()), "the instance stays");
    let sg = now["security_group_id"].as_str().unwrap();
    let i = &stack_instances(&ec2, "dify-app").await[0];
    let groups: Vec<&str> = i.security_groups().iter().filter_map(|g| g.group_id()).chain(i.network_interfaces().iter().flat_map(|n| n.groups()).filter_map(|g| g.group_id())).collect();
    assert!(groups.contains(&sg), "the instance is in the recreated group: {groups:?}");
}

#[tokio::test]
async fn a_stack_whose_data_dies_with_its_instances_warns_and_a_replacement_needs_allow_data_loss() {
    let moto = Moto::start();
    let (_, net, cert) = setup(&moto).await;
    let ws = Workspace::new(&moto, &config(&net, &cert, ""));
    ws.init();
    let applied = ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert!(applied.flat().contains("Dify's data dies with its instances"), "{}", applied.all());

    // A version bump replaces the instances: refused before anything changes.
    ws.write("main.tf", &config(&net, &cert, "  dify {\n    version = \"1.13.3-next\"\n  }"));
    let refused = ws.run(&["plan", "-input=false"]);
    assert_ne!(refused.code, 0);
    assert!(refused.flat().contains("Replacing the instances would delete Dify's data") && refused.flat().contains("allow_data_loss"), "{}", refused.all());

    ws.write("main.tf", &config(&net, &cert, "  allow_data_loss = true\n  dify {\n    version = \"1.13.3-next\"\n  }"));
    let planned = ws.ok(&["plan", "-input=false"]);
    assert!(!planned.flat().contains("dies with its instances"), "allow_data_loss silences the warning: {}", planned.all());
    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
}

#[tokio::test]
async fn an_instance_with_its_data_volume_at_xvdf_imports_with_it() {
    let moto = Moto::start();
    let (ec2, net, cert) = setup(&moto).await;
    let ws = Workspace::new(&moto, &config(&net, &cert, ONE));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let out = ws.outputs()["stack"]["value"].clone();
    let (instance, volume) = (out["instance_ids"][0].as_str().unwrap().to_string(), out["data_volume_ids"][0].as_str().unwrap().to_string());
    // As the HCL module attached it.
    ec2.detach_volume().volume_id(&volume).instance_id(&instance).send().await.unwrap();
    ec2.attach_volume().volume_id(&volume).instance_id(&instance).device("/dev/xvdf").send().await.unwrap();
    ws.ok(&["state", "rm", "dify_ec2_stack.app"]);
    ws.ok(&["import", "-input=false", "dify_ec2_stack.app", &instance]);
    let state = ws.ok(&["state", "show", "-no-color", "dify_ec2_stack.app"]).stdout;
    assert!(state.contains(&volume), "the data volume at /dev/xvdf is the stack's: {state}");
    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
}

#[tokio::test]
async fn private_subnets_with_no_way_out_warn_at_plan_until_a_nat_route_is_added() {
    let moto = Moto::start();
    let (ec2, net, cert) = setup(&moto).await;
    let (priv_a, priv_c) = (net.private[0].1.clone(), net.private[1].1.clone());
    let ws = Workspace::new(&moto, &config(&net, &cert, ONE));
    ws.init();
    // The seeded private subnets use the VPC's main route table, which has only the local route.
    let plan = ws.ok(&["plan", "-input=false"]);
    let flat = plan.flat();
    assert!(flat.contains("No way out of subnets") && flat.contains(&priv_a) && flat.contains(&priv_c), "{}", plan.all());
    assert!(flat.contains("NAT gateway") && flat.contains("Docker Hub"), "it says what is missing: {}", plan.all());
    assert!(flat.contains("com.amazonaws.us-east-1.ssm (interface, private DNS)") && flat.contains("com.amazonaws.us-east-1.s3 (gateway"), "and the endpoints a closed network would need: {}", plan.all());

    // A NAT gateway in a public subnet and a private route table sending 0.0.0.0/0 to it.
    let eip = ec2.allocate_address().domain(aws_sdk_ec2::types::DomainType::Vpc).send().await.unwrap().allocation_id.unwrap();
    let nat = ec2.create_nat_gateway().subnet_id(&net.public[0].1).allocation_id(eip).send().await.unwrap().nat_gateway.unwrap().nat_gateway_id.unwrap();
    let rt = ec2.create_route_table().vpc_id(&net.vpc_id).send().await.unwrap().route_table.unwrap().route_table_id.unwrap();
    ec2.create_route().route_table_id(&rt).destination_cidr_block("0.0.0.0/0").nat_gateway_id(&nat).send().await.unwrap();
    for subnet in [&priv_a, &priv_c] {
        ec2.associate_route_table().route_table_id(&rt).subnet_id(subnet).send().await.unwrap();
    }
    let plan = ws.ok(&["plan", "-input=false"]);
    assert!(!plan.flat().contains("No way out"), "a NAT route is a way out:\n{}", plan.all());
}
