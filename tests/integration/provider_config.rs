//! The provider block through real Terraform: account guards, unknown configuration, AWS call logging.

use crate::harness::{Moto, Workspace, MOTO_ACCOUNT};

fn config(provider_body: &str, rest: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    dify = {{ source = "NAMESPACE/dify" }}
  }}
}}

provider "dify" {{
{provider_body}
}}

{rest}
"#
    )
}

const AMI: &str = "data \"dify_ami\" \"this\" {}\noutput \"ami\" { value = data.dify_ami.this.id }";

#[tokio::test]
async fn allowed_account_ids_refuses_the_wrong_account_before_any_change() {
    let moto = Moto::start();
    let wrong = Workspace::new(&moto, &config("  allowed_account_ids = [\"111111111111\"]", AMI));
    wrong.init();
    let out = wrong.run(&["plan", "-input=false"]);
    assert_ne!(out.code, 0);
    let text = out.flat();
    assert!(text.contains("Wrong AWS account") && text.contains(MOTO_ACCOUNT) && text.contains("allowed_account_ids"), "{text}");

    let forbidden = Workspace::new(&moto, &config(&format!("  forbidden_account_ids = [\"{MOTO_ACCOUNT}\"]"), AMI));
    forbidden.init();
    let out = forbidden.run(&["plan", "-input=false"]);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains("Forbidden AWS account"), "{}", out.all());

    let right = Workspace::new(&moto, &config(&format!("  allowed_account_ids = [\"{MOTO_ACCOUNT}\"]\n  region = \"us-east-1\""), AMI));
    right.init();
    right.ok(&["apply", "-auto-approve", "-input=false"]);
}

#[tokio::test]
async fn explicit_endpoints_and_default_tags_are_accepted() {
    let moto = Moto::start();
    let endpoint = moto.endpoint();
    let body = format!(
        "  region = \"us-east-1\"\n  endpoints {{\n    ec2 = \"{endpoint}\"\n    sts = \"{endpoint}\"\n    elbv2 = \"{endpoint}\"\n    route53 = \"{endpoint}\"\n    ebs = \"{endpoint}\"\n    dlm = \"{endpoint}\"\n  }}\n  default_tags {{\n    tags = {{ env = \"dev\" }}\n  }}\n  max_retries = 3"
    );
    let ws = Workspace::new(&moto, &config(&body, AMI)).env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
}

#[tokio::test]
async fn provider_configuration_unknown_at_plan_does_not_crash() {
    let moto = Moto::start();
    let rest = "resource \"terraform_data\" \"region\" {\n  input = \"us-east-1\"\n}\n";
    let ws = Workspace::new(&moto, &config("  region = terraform_data.region.output", rest));
    ws.init();
    ws.ok(&["plan", "-input=false"]);
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
}

#[tokio::test]
async fn tf_log_debug_shows_every_aws_call_on_stderr_and_nothing_else_breaks() {
    let moto = Moto::start();
    let ws = Workspace::new(&moto, &config("", AMI)).env("TF_LOG", "DEBUG");
    ws.init();
    let out = ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let text = out.all();
    let call = text.lines().find(|l| l.contains("AWS call") && l.contains("DescribeImages")).unwrap_or_else(|| panic!("no AWS call logged:\n{text}"));
    for field in ["aws.service", "aws.request_id", "duration_ms", "aws.status=200"] {
        assert!(call.contains(field), "{field} missing in {call}");
    }
    assert!(text.contains("GetCallerIdentity"), "the STS check is logged too");
}

#[tokio::test]
async fn invalid_max_retries_is_named_at_validate() {
    let moto = Moto::start();
    let ws = Workspace::new(&moto, &config("  max_retries = 1000", AMI));
    ws.init();
    let out = ws.run(&["validate"]);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains("max_retries"), "{}", out.all());
}

#[tokio::test]
async fn providers_schema_json_lists_both_data_sources_with_descriptions() {
    let moto = Moto::start();
    let ws = Workspace::new(&moto, &config("", AMI));
    ws.init();
    let out = ws.ok(&["providers", "schema", "-json"]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let schemas = json["provider_schemas"].as_object().unwrap();
    let (address, ours) = schemas.iter().find(|(k, _)| k.ends_with("/dify")).expect("the dify provider");
    assert_eq!(address, &format!("registry.terraform.io/{}/dify", crate::harness::namespace()));
    for name in ["dify_network", "dify_ami"] {
        let block = &ours["data_source_schemas"][name]["block"];
        assert!(block["description"].as_str().is_some_and(|d| !d.is_empty()), "{name} description");
        for (attr, spec) in block["attributes"].as_object().unwrap() {
            assert!(spec["description"].as_str().is_some_and(|d| !d.is_empty()), "{name}.{attr} has no description");
        }
    }
    assert!(!ours["provider"]["block"]["description"].as_str().unwrap_or_default().is_empty());
}

/// The examples the registry pages embed are valid configuration.
#[tokio::test]
async fn examples_validate() {
    let moto = Moto::start();
    let root = crate::harness::root();
    for example in ["examples/provider/provider.tf", "examples/data-sources/dify_network/data-source.tf", "examples/data-sources/dify_ami/data-source.tf", "examples/data-sources/dify_instance_policy/data-source.tf", "examples/resources/dify_persistent_volume/resource.tf", "examples/resources/dify_alb/resource.tf", "examples/resources/dify_ec2_stack/resource.tf", "examples/resources/dify_dns_record/resource.tf"] {
        let text = std::fs::read_to_string(root.join(example)).unwrap().replace("difyops/dify", "NAMESPACE/dify");
        let ws = if text.contains("required_providers") {
            Workspace::new(&moto, &text)
        } else {
            let ws = Workspace::new(&moto, &config("", ""));
            ws.write("example.tf", &text);
            ws
        };
        ws.init();
        let out = ws.run(&["validate"]);
        assert_eq!(out.code, 0, "{example} does not validate:\n{}", out.all());
    }
}
