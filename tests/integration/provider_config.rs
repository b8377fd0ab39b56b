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
        "  region = \"us-east-1\"\n  endpoints {{\n    ec2 = \"{endpoint}\"\n    sts = \"{endpoint}\"\n    elbv2 = \"{endpoint}\"\n    route53 = \"{endpoint}\"\n    ebs = \"{endpoint}\"\n  }}\n  default_tags {{\n    tags = {{ env = \"dev\" }}\n  }}\n  max_retries = 3"
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
