//! Acceptance tests of `dify_dns_record` through real Terraform against the emulator.

use aws_sdk_route53::types::{AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType};

use crate::harness::{Moto, Workspace};

const TARGET: &str = "dify-web-123456.us-east-1.elb.amazonaws.com";
const TARGET_ZONE: &str = "Z35SXDOTRQ7X7K";

fn config(zone: &str, extra: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    dify = {{ source = "NAMESPACE/dify" }}
  }}
}}

provider "dify" {{}}

resource "dify_dns_record" "dify" {{
  zone_id = "{zone}"
  name    = "dify.example.com"
  alias {{
    dns_name = "{TARGET}"
    zone_id  = "{TARGET_ZONE}"
  }}
{extra}
}}

output "record" {{
  value = dify_dns_record.dify
}}
"#
    )
}

async fn zone(r53: &aws_sdk_route53::Client) -> String {
    let out = r53.create_hosted_zone().name("example.com").caller_reference(format!("t-{}", std::process::id())).send().await.unwrap();
    out.hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_string()
}

async fn records(r53: &aws_sdk_route53::Client, zone: &str, ty: RrType) -> Vec<ResourceRecordSet> {
    r53.list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap()
        .resource_record_sets()
        .iter()
        .filter(|r| r.name() == "dify.example.com." && *r.r#type() == ty)
        .cloned()
        .collect()
}

#[tokio::test]
async fn alias_record_lifecycle_with_import_ipv6_and_destroy() {
    let moto = Moto::start();
    let r53 = moto.route53().await;
    let zone = zone(&r53).await;
    let ws = Workspace::new(&moto, &config(&zone, ""));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let a = records(&r53, &zone, RrType::A).await;
    assert_eq!(a.len(), 1);
    let alias = a[0].alias_target().expect("an alias");
    assert_eq!(alias.dns_name().trim_end_matches('.'), TARGET);
    assert!(alias.evaluate_target_health(), "evaluate_target_health defaults to true");
    let out = ws.outputs()["record"]["value"].clone();
    assert_eq!(out["fqdn"], "dify.example.com");
    assert_eq!(out["id"], format!("{zone}_dify.example.com_A").as_str());
    ws.assert_no_changes();

    ws.ok(&["state", "rm", "dify_dns_record.dify"]);
    ws.ok(&["import", "-input=false", "dify_dns_record.dify", &format!("{zone}_dify.example.com_A")]);
    ws.assert_no_changes();
    ws.ok(&["state", "rm", "dify_dns_record.dify"]);
    ws.write("import.tf", &format!("import {{\n  to       = dify_dns_record.dify\n  identity = {{ zone_id = \"{zone}\", name = \"dify.example.com\", type = \"A\" }}\n}}\n"));
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    std::fs::remove_file(ws.dir.path().join("import.tf")).unwrap();
    ws.assert_no_changes();

    ws.write("main.tf", &config(&zone, "  ipv6 = true"));
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert_eq!(records(&r53, &zone, RrType::Aaaa).await.len(), 1, "AAAA added");
    ws.assert_no_changes();
    ws.write("main.tf", &config(&zone, ""));
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert!(records(&r53, &zone, RrType::Aaaa).await.is_empty(), "AAAA removed");

    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    assert!(records(&r53, &zone, RrType::A).await.is_empty());
}

#[tokio::test]
async fn an_existing_record_is_refused_unless_overwrite_and_drift_is_recreated() {
    let moto = Moto::start();
    let r53 = moto.route53().await;
    let zone = zone(&r53).await;
    let existing = ResourceRecordSet::builder()
        .name("dify.example.com.")
        .r#type(RrType::A)
        .alias_target(AliasTarget::builder().hosted_zone_id(TARGET_ZONE).dns_name("old-alb.us-east-1.elb.amazonaws.com").evaluate_target_health(false).build().unwrap())
        .build()
        .unwrap();
    r53.change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(ChangeBatch::builder().changes(Change::builder().action(ChangeAction::Create).resource_record_set(existing).build().unwrap()).build().unwrap())
        .send()
        .await
        .unwrap();
    let ws = Workspace::new(&moto, &config(&zone, ""));
    ws.init();
    let out = ws.run(&["apply", "-auto-approve", "-input=false"]);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains("already exists") && out.flat().contains(&format!("terraform import dify_dns_record.<name> {zone}_dify.example.com_A")), "{}", out.all());
    assert!(records(&r53, &zone, RrType::A).await[0].alias_target().unwrap().dns_name().starts_with("old-alb"), "untouched");

    ws.write("main.tf", &config(&zone, "  allow_overwrite = true"));
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert!(records(&r53, &zone, RrType::A).await[0].alias_target().unwrap().dns_name().starts_with("dify-web"));
    ws.assert_no_changes();

    // Deleted outside Terraform: planned again and recreated.
    let current = records(&r53, &zone, RrType::A).await.remove(0);
    r53.change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(ChangeBatch::builder().changes(Change::builder().action(ChangeAction::Delete).resource_record_set(current).build().unwrap()).build().unwrap())
        .send()
        .await
        .unwrap();
    let plan = ws.ok(&["plan", "-input=false"]);
    assert!(plan.stdout.contains("1 to add"), "{}", plan.stdout);
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert_eq!(records(&r53, &zone, RrType::A).await.len(), 1);
    ws.assert_no_changes();

    // Exactly the record the config describes, unknown to the state (an apply killed after Route 53 took the
    // change): taken over with a warning, not refused. A different one stays refused (above).
    ws.ok(&["state", "rm", "dify_dns_record.dify"]);
    let out = ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert!(out.flat().contains("Took over the existing record dify.example.com"), "{}", out.all());
    assert_eq!(records(&r53, &zone, RrType::A).await.len(), 1);
    ws.assert_no_changes();
}
