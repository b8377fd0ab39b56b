//! The bad-input catalogue: every file in tests/bad_input/ is one invalid configuration. Each must fail at
//! `terraform validate` or `plan` with a message naming the attribute (first line `# expect: ATTRIBUTE && TEXT`), and
//! the proxy between the provider and the emulator must have seen no call that changes anything.
//! A `# provider: ...` line adds arguments to the provider block. Adding a case is adding a file.

use crate::harness::{root, Workspace};
use crate::proxy::{is_read_only, AwsProxy};
use crate::{harness::Moto, seed};

const COMMON: &str = r#"
data "dify_network" "n" {
  vpc_name             = "bad"
  public_subnet_names  = ["bad-public-a", "bad-public-c"]
  private_subnet_names = ["bad-private-a", "bad-private-c"]
}
"#;

#[tokio::test]
async fn every_bad_input_fails_early_naming_the_attribute_and_changes_nothing() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    seed::network(&ec2, "bad", "10.99").await;
    let volume_in_c = ec2.create_volume().availability_zone("us-east-1c").size(1).send().await.unwrap().volume_id.unwrap();
    let proxy = AwsProxy::start(&moto.endpoint());
    let ws = Workspace::via(&proxy.endpoint(), "terraform {\n  required_providers {\n    dify = { source = \"NAMESPACE/dify\" }\n  }\n}\nprovider \"dify\" {}\n");
    ws.init();

    let mut cases: Vec<_> = std::fs::read_dir(root().join("tests/bad_input")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "tf")).collect();
    cases.sort();
    assert!(cases.len() >= 40, "the catalogue holds {} cases", cases.len());
    let mut failures = Vec::new();
    let mut at_plan = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(case).unwrap();
        let expect = text.lines().find_map(|l| l.strip_prefix("# expect: ")).unwrap_or_else(|| panic!("{name}: no `# expect:` line"));
        let needles: Vec<&str> = expect.split(" && ").map(str::trim).collect();
        let provider_extra = text.lines().find_map(|l| l.strip_prefix("# provider: ")).unwrap_or("").replace("\\n", "\n");
        let body = text.replace("VOLUME_IN_C", &volume_in_c);
        ws.write(
            "main.tf",
            &format!("terraform {{\n  required_providers {{\n    dify = {{ source = \"NAMESPACE/dify\" }}\n  }}\n}}\nprovider \"dify\" {{\n  {provider_extra}\n}}\n{COMMON}\n{body}"),
        );
        let mut out = ws.run(&["validate"]);
        let stage = if out.code == 0 {
            out = ws.run(&["plan", "-input=false"]);
            at_plan.push(name.clone());
            "plan"
        } else {
            "validate"
        };
        let flat = out.flat();
        if out.code == 0 {
            failures.push(format!("{name}: accepted at {stage}"));
        } else if let Some(missing) = needles.iter().find(|n| !flat.contains(*n)) {
            failures.push(format!("{name}: failed at {stage} but without {missing:?}:\n{}", out.all()));
        }
    }
    // The validate/plan split (docs/reliability.md): `terraform validate` runs offline, so what reaches plan is what
    // validate let through.
    eprintln!("bad input: {} at validate, {} at plan ({})", cases.len() - at_plan.len(), at_plan.len(), at_plan.join(", "));
    assert!(failures.is_empty(), "{} of {} cases:\n{}", failures.len(), cases.len(), failures.join("\n\n"));
    let changed: Vec<String> = proxy.calls().into_iter().map(|c| c.operation).filter(|o| !is_read_only(o)).collect();
    assert!(changed.is_empty(), "bad input reached AWS with changes: {changed:?}");
}
