//! Acceptance tests of data source `dify_network` through real Terraform against the emulator.

use serde_json::Value as Json;

use crate::harness::{Moto, Workspace};
use crate::seed;

fn config(body: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    dify = {{ source = "NAMESPACE/dify" }}
  }}
}}

provider "dify" {{}}

data "dify_network" "this" {{
{body}
}}

output "network" {{
  value = data.dify_network.this
}}
"#
    )
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn network_by_names_returns_the_subnets_in_order_with_public_flags() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = seed::network(&ec2, "dify-dev", "10.20").await;
    seed::network(&ec2, "other", "10.30").await;
    let ws = Workspace::new(
        &moto,
        &config(
            r#"  vpc_name             = "dify-dev"
  public_subnet_names  = ["dify-dev-public-c", "dify-dev-public-a"]
  private_subnet_names = ["dify-dev-private-a", "dify-dev-private-c"]"#,
        ),
    );
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let out = &ws.outputs()["network"]["value"];
    assert_eq!(out["vpc_id"], net.vpc_id.as_str());
    assert_eq!(out["id"], net.vpc_id.as_str());
    assert_eq!(out["vpc_cidr"], net.vpc_cidr.as_str());
    assert_eq!(strings(&out["public_subnet_ids"]), vec![net.public[1].1.clone(), net.public[0].1.clone()], "in the order named");
    assert_eq!(strings(&out["private_subnet_ids"]), vec![net.private[0].1.clone(), net.private[1].1.clone()]);
    let subnets = out["subnets"].as_array().unwrap();
    assert_eq!(subnets.len(), 4);
    for s in subnets {
        let public = net.public.iter().any(|(_, id, _)| s["id"] == id.as_str());
        assert_eq!(s["public"], public, "public flag of {s}");
        let (name, _, az) = net.public.iter().chain(net.private.iter()).find(|(_, id, _)| s["id"] == id.as_str()).unwrap();
        assert_eq!(s["name"], name.as_str());
        assert_eq!(s["availability_zone"], az.as_str());
    }
    ws.assert_no_changes();
    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
}

#[tokio::test]
async fn network_by_id_and_tags_splits_public_from_private_by_route() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = seed::network(&ec2, "dify-stg", "10.40").await;
    let ws = Workspace::new(&moto, &config(&format!("  vpc_id      = \"{}\"\n  subnet_tags = {{ app = \"dify\" }}", net.vpc_id)));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let out = &ws.outputs()["network"]["value"];
    let mut public = strings(&out["public_subnet_ids"]);
    public.sort();
    let mut expected: Vec<String> = net.public.iter().map(|s| s.1.clone()).collect();
    expected.sort();
    assert_eq!(public, expected);
    assert_eq!(strings(&out["private_subnet_ids"]).len(), 2);
    assert_eq!(out["vpc_id"], net.vpc_id.as_str());
}

#[tokio::test]
async fn network_needs_vpc_name_or_vpc_id_at_validate() {
    let moto = Moto::start();
    let ws = Workspace::new(&moto, &config("  public_subnet_names = [\"a\"]"));
    ws.init();
    let out = ws.run(&["validate"]);
    assert_ne!(out.code, 0, "validate must fail:\n{}", out.all());
    let text = out.flat();
    assert!(text.contains("vpc_name") && text.contains("vpc_id"), "the error names both attributes:\n{text}");
    let both = Workspace::new(&moto, &config("  vpc_name = \"a\"\n  vpc_id = \"vpc-123\""));
    both.init();
    let out = both.run(&["validate"]);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains("Conflicting arguments"), "{}", out.all());
}

#[tokio::test]
async fn unknown_vpc_name_fails_at_plan_with_no_vpc_named() {
    let moto = Moto::start();
    let ws = Workspace::new(&moto, &config("  vpc_name = \"does-not-exist\""));
    ws.init();
    ws.ok(&["validate"]);
    let out = ws.run(&["plan", "-input=false"]);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains("no VPC named \"does-not-exist\""), "{}", out.all());
}

#[tokio::test]
async fn ambiguous_vpc_names_and_foreign_subnets_are_refused_with_the_ids() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let a = seed::network(&ec2, "twin", "10.50").await;
    let b = seed::network(&ec2, "twin", "10.60").await;
    let other = seed::network(&ec2, "neighbour", "10.70").await;

    let ws = Workspace::new(&moto, &config("  vpc_name = \"twin\""));
    ws.init();
    let out = ws.run(&["plan", "-input=false"]);
    assert_ne!(out.code, 0);
    let text = out.flat();
    assert!(text.contains("2 VPCs are named \"twin\"") && text.contains(&a.vpc_id) && text.contains(&b.vpc_id), "{text}");

    let ws = Workspace::new(&moto, &config(&format!("  vpc_id = \"{}\"\n  private_subnet_names = [\"neighbour-private-a\"]", a.vpc_id)));
    ws.init();
    let out = ws.run(&["plan", "-input=false"]);
    assert_ne!(out.code, 0);
    let text = out.flat();
    assert!(text.contains(&format!("is not in VPC {}", a.vpc_id)) && text.contains(&other.vpc_id), "{text}");
}
