//! Acceptance tests of data source `dify_ami` through real Terraform against the emulator.

use aws_sdk_ec2::types::Filter;

use crate::harness::{Moto, Workspace};

const CONFIG: &str = r#"
terraform {
  required_providers {
    dify = { source = "NAMESPACE/dify" }
  }
}

provider "dify" {}

data "dify_ami" "x86" {}

data "dify_ami" "arm" {
  architecture = "arm64"
}

output "x86" { value = data.dify_ami.x86 }
output "arm" { value = data.dify_ami.arm }
"#;

/// The newest standard AL2023 image per the emulator, computed independently of the provider.
async fn newest(ec2: &aws_sdk_ec2::Client, arch: &str) -> (String, String) {
    let images = ec2
        .describe_images()
        .owners("amazon")
        .filters(Filter::builder().name("architecture").values(arch).build())
        .send()
        .await
        .unwrap()
        .images
        .unwrap_or_default();
    images
        .iter()
        .filter(|i| {
            let name = i.name().unwrap_or_default();
            name.starts_with("al2023-ami-2023.") && name.ends_with(&format!("-{arch}")) && name.contains("-kernel-")
        })
        .map(|i| (i.creation_date().unwrap_or_default().to_string(), i.name().unwrap_or_default().to_string(), i.image_id().unwrap_or_default().to_string()))
        .max()
        .map(|(_, name, id)| (id, name))
        .expect("the emulator ships AL2023 images")
}

#[tokio::test]
async fn ami_is_the_latest_amazon_linux_2023_for_each_architecture() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let ws = Workspace::new(&moto, CONFIG);
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let out = ws.outputs();
    for (key, arch) in [("x86", "x86_64"), ("arm", "arm64")] {
        let v = &out[key]["value"];
        let (id, name) = newest(&ec2, arch).await;
        assert_eq!(v["id"], id.as_str(), "{key}: {v}");
        assert_eq!(v["name"], name.as_str());
        assert_eq!(v["architecture"], arch);
        assert!(!v["creation_date"].as_str().unwrap().is_empty());
    }
    ws.assert_no_changes();
}

#[tokio::test]
async fn ami_refuses_an_unknown_architecture_at_validate() {
    let moto = Moto::start();
    let ws = Workspace::new(&moto, &CONFIG.replace("\"arm64\"", "\"sparc\""));
    ws.init();
    let out = ws.run(&["validate"]);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains("architecture") && out.flat().contains("x86_64, arm64"), "{}", out.all());
}
