//! The release round trip: package the provider as a registry release, verify checksums and the detached GPG
//! signature (a throwaway key made here), then install the zip the way `terraform init` does and use it.

use std::process::Command;

use sha2::Digest;

use crate::harness::{namespace, provider_binary, root, venv, Moto, Workspace};

const VERSION: &str = "0.9.1";

fn gpg(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("gpg").env("GNUPGHOME", home).args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""]).args(args).output().expect("gpg")
}

#[tokio::test]
async fn a_signed_release_installs_from_a_mirror_and_works() {
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let made = gpg(&home, &["--quick-gen-key", "Release Test <release@example.com>", "rsa2048", "sign", "never"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let listed = gpg(&home, &["--with-colons", "--list-secret-keys"]);
    let fingerprint = String::from_utf8_lossy(&listed.stdout).lines().find(|l| l.starts_with("fpr:")).and_then(|l| l.split(':').nth(9)).unwrap().to_string();

    let dist = work.path().join("dist");
    let out = Command::new(venv().join("bin/python"))
        .arg(root().join("release/package.py"))
        .args([VERSION, provider_binary().to_str().unwrap(), dist.to_str().unwrap()])
        .env("GNUPGHOME", &home)
        .env("GPG_FINGERPRINT", &fingerprint)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let zip_name = format!("terraform-provider-dify_{VERSION}_linux_amd64.zip");
    let sums_name = format!("terraform-provider-dify_{VERSION}_SHA256SUMS");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dist.join(format!("terraform-provider-dify_{VERSION}_manifest.json"))).unwrap()).unwrap();
    assert_eq!(manifest["metadata"]["protocol_versions"], serde_json::json!(["6.0"]));
    let sums = std::fs::read_to_string(dist.join(&sums_name)).unwrap();
    let zip_sha: String = sha2::Sha256::digest(std::fs::read(dist.join(&zip_name)).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    assert!(sums.contains(&format!("{zip_sha}  {zip_name}")), "{sums}");
    assert!(sums.contains("_manifest.json"), "the manifest is covered");
    let verified = gpg(&home, &["--verify", dist.join(format!("{sums_name}.sig")).to_str().unwrap(), dist.join(&sums_name).to_str().unwrap()]);
    assert!(verified.status.success(), "signature: {}", String::from_utf8_lossy(&verified.stderr));

    // Install from a mirror in the registry's packed layout, as `terraform providers mirror` lays it out.
    let moto = Moto::start();
    let mirror = work.path().join("mirror");
    let pkg = mirror.join(format!("registry.terraform.io/{}/dify", namespace()));
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::copy(dist.join(&zip_name), pkg.join(&zip_name)).unwrap();
    let config = format!(
        "terraform {{\n  required_providers {{\n    dify = {{\n      source  = \"NAMESPACE/dify\"\n      version = \"{VERSION}\"\n    }}\n  }}\n}}\nprovider \"dify\" {{}}\ndata \"dify_ami\" \"x\" {{}}\noutput \"ami\" {{ value = data.dify_ami.x.id }}\n"
    );
    let ws = Workspace::new(&moto, &config);
    std::fs::write(
        ws.dir.path().join("terraform.rc"),
        format!("provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n", mirror.display()),
    )
    .unwrap();
    ws.init();
    let lock = std::fs::read_to_string(ws.dir.path().join(".terraform.lock.hcl")).unwrap();
    assert!(lock.contains(&format!("version     = \"{VERSION}\"")) && lock.contains("h1:"), "{lock}");
    let unpacked = ws.dir.path().join(format!(".terraform/providers/registry.terraform.io/{}/dify/{VERSION}/linux_amd64/terraform-provider-dify_v{VERSION}", namespace()));
    assert_eq!(std::fs::read(&unpacked).unwrap(), std::fs::read(provider_binary()).unwrap(), "terraform unpacked our binary from the zip");
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert!(ws.outputs()["ami"]["value"].as_str().unwrap().starts_with("ami-"));
}
