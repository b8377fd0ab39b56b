//! Acceptance tests of `dify_persistent_volume` through real Terraform against the emulator.

use aws_sdk_ec2::types::Filter;

use crate::harness::{Moto, Workspace};
use crate::proxy::AwsProxy;

fn config(body: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    dify = {{ source = "NAMESPACE/dify" }}
  }}
}}

provider "dify" {{
  default_tags {{
    tags = {{ Project = "dify" }}
  }}
}}

resource "dify_persistent_volume" "data" {{
{body}
}}

output "id" {{
  value = dify_persistent_volume.data.id
}}
"#
    )
}

const BASIC: &str = r#"  name              = "dify-dev-data"
  availability_zone = "us-east-1a"
  tags              = { Environment = "dev" }"#;

async fn volumes_named(ec2: &aws_sdk_ec2::Client, name: &str) -> Vec<aws_sdk_ec2::types::Volume> {
    ec2.describe_volumes()
        .filters(Filter::builder().name("tag:Name").values(name).build())
        .send()
        .await
        .unwrap()
        .volumes
        .unwrap_or_default()
}

fn tag<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

#[tokio::test]
async fn volume_lifecycle_apply_plan_import_destroy_keeps_a_tagged_final_snapshot() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let ws = Workspace::new(&moto, &config(BASIC));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let id = ws.outputs()["id"]["value"].as_str().unwrap().to_string();
    let vols = volumes_named(&ec2, "dify-dev-data").await;
    assert_eq!(vols.len(), 1);
    let v = &vols[0];
    assert_eq!(v.volume_id(), Some(id.as_str()));
    assert_eq!(v.size(), Some(20));
    assert_eq!(v.volume_type().map(|t| t.as_str()), Some("gp3"));
    assert_eq!(v.encrypted(), Some(true), "encrypted by default");
    assert_eq!(v.availability_zone(), Some("us-east-1a"));
    assert_eq!(tag(v.tags(), "Environment"), Some("dev"));
    assert_eq!(tag(v.tags(), "Project"), Some("dify"), "default_tags merged");
    ws.assert_no_changes();

    // Import into a fresh state: the plan afterwards is empty.
    ws.ok(&["state", "rm", "dify_persistent_volume.data"]);
    ws.ok(&["import", "-input=false", "dify_persistent_volume.data", &id]);
    ws.assert_no_changes();

    // An import block by identity works too.
    ws.ok(&["state", "rm", "dify_persistent_volume.data"]);
    ws.write("import.tf", &format!("import {{\n  to       = dify_persistent_volume.data\n  identity = {{ id = \"{id}\" }}\n}}\n"));
    let out = ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert!(out.stdout.contains("1 imported, 0 added, 0 changed, 0 destroyed"), "{}", out.stdout);
    std::fs::remove_file(ws.dir.path().join("import.tf")).unwrap();

    let out = ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    assert!(out.flat().contains("Final snapshot snap-"), "the snapshot id is reported:\n{}", out.all());
    assert!(volumes_named(&ec2, "dify-dev-data").await.is_empty(), "no volume left");
    let snaps = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(Filter::builder().name("tag:dify:final-snapshot-of").values(&id).build())
        .send()
        .await
        .unwrap()
        .snapshots
        .unwrap_or_default();
    assert_eq!(snaps.len(), 1, "exactly one final snapshot");
    assert_eq!(tag(snaps[0].tags(), "Environment"), Some("dev"), "tags copied");
    assert_eq!(snaps[0].volume_id(), Some(id.as_str()));
}

#[tokio::test]
async fn growing_a_volume_changes_it_in_place_and_shrinking_is_refused_at_plan() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let ws = Workspace::new(&moto, &config(BASIC));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let id = ws.outputs()["id"]["value"].as_str().unwrap().to_string();

    ws.write("main.tf", &config(&format!("{BASIC}\n  size_gb = 30\n  iops = 4000\n  final_snapshot = false")));
    let plan = ws.ok(&["plan", "-input=false"]);
    assert!(plan.stdout.contains("0 to add, 1 to change, 0 to destroy"), "grows in place:\n{}", plan.stdout);
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let v = &volumes_named(&ec2, "dify-dev-data").await[0];
    assert_eq!(v.volume_id(), Some(id.as_str()), "same volume");
    assert_eq!(v.size(), Some(30));
    assert_eq!(v.iops(), Some(4000));
    ws.assert_no_changes();

    ws.write("main.tf", &config(&format!("{BASIC}\n  size_gb = 25\n  iops = 4000\n  final_snapshot = false")));
    let out = ws.run(&["plan", "-input=false"]);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains("EBS volumes cannot shrink (30 GiB → 25 GiB)") && out.flat().contains("size_gb"), "{}", out.all());

    ws.write("main.tf", &config(&format!("{BASIC}\n  size_gb = 30\n  iops = 4000\n  final_snapshot = false")));
    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    assert!(volumes_named(&ec2, "dify-dev-data").await.is_empty());
}

#[tokio::test]
async fn each_validation_rule_names_its_attribute_before_any_aws_change() {
    let moto = Moto::start();
    let proxy = AwsProxy::start(&moto.endpoint());
    let cases: &[(&str, &str, &str)] = &[
        ("  iops = 2000", "iops", "3000–16000"),
        ("  iops = 17000", "iops", "3000–16000"),
        ("  throughput = 100", "throughput", "125–1000"),
        ("  throughput = 1100", "throughput", "125–1000"),
        ("  throughput = 1000", "throughput", "iops/4"),
        ("  iops = 4000\n  throughput = 1001", "throughput", "125–1000"),
        ("  type = \"io2\"", "iops", "io2 volumes need provisioned IOPS"),
        ("  type = \"gp2\"\n  iops = 3000", "iops", "gp2"),
        ("  type = \"st1\"", "type", "gp3, gp2, io2"),
        ("  size_gb = 0", "size_gb", "1 to 16384"),
        ("  size_gb = 16385", "size_gb", "1 to 16384"),
        ("  snapshot_id = \"snap-123\"\n  source_image = \"disk.img\"", "source_image", "cannot be used together"),
        ("  encrypted = false\n  kms_key_id = \"alias/aws/ebs\"", "kms_key_id", "encrypted = true"),
        ("  timeouts {\n    create = \"soon\"\n  }", "timeouts.create", "duration"),
        ("  source_image = \"missing.img\"", "source_image", "Cannot read missing.img"),
    ];
    for (extra, attr, message) in cases {
        let ws = Workspace::via(&proxy.endpoint(), &config(&format!("  name = \"v\"\n  availability_zone = \"us-east-1a\"\n{extra}")));
        ws.init();
        let out = ws.run(&["plan", "-input=false"]);
        assert_ne!(out.code, 0, "{extra:?} must fail");
        let text = out.flat();
        assert!(text.contains(attr) && text.contains(message), "{extra:?}: expected `{attr}` and {message:?} in:\n{}", out.all());
    }
    let ws = Workspace::via(&proxy.endpoint(), &config("  name = \"v\"\n  availability_zone = \"us-east-1z\""));
    ws.init();
    let out = ws.run(&["plan", "-input=false"]);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains("No availability zone \"us-east-1z\" in us-east-1") && out.flat().contains("us-east-1a"), "{}", out.all());

    let mutating: Vec<_> = proxy.calls().into_iter().filter(|c| !c.operation.contains(":Describe") && !c.operation.ends_with("GetCallerIdentity")).collect();
    assert!(mutating.is_empty(), "bad input must not change AWS: {mutating:?}");
}

#[tokio::test]
async fn a_volume_deleted_outside_terraform_is_planned_again() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let ws = Workspace::new(&moto, &config(&format!("{BASIC}\n  final_snapshot = false")));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let id = ws.outputs()["id"]["value"].as_str().unwrap().to_string();
    ec2.delete_volume().volume_id(&id).send().await.unwrap();
    let plan = ws.ok(&["plan", "-input=false"]);
    assert!(plan.stdout.contains("1 to add, 0 to change, 0 to destroy"), "{}", plan.stdout);
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    assert_eq!(volumes_named(&ec2, "dify-dev-data").await.len(), 1);

    // Tag drift is named and restored.
    let id = ws.outputs()["id"]["value"].as_str().unwrap().to_string();
    ec2.create_tags().resources(&id).tags(aws_sdk_ec2::types::Tag::builder().key("Environment").value("tampered").build()).send().await.unwrap();
    ws.plan_shows_then_apply_restores(&["\"tampered\" -> \"dev\""]);
}

#[tokio::test]
async fn an_interrupted_create_is_retried_without_a_second_volume() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let proxy = AwsProxy::start(&moto.endpoint());
    let ws = Workspace::via(&proxy.endpoint(), &config(&format!("{BASIC}\n  final_snapshot = false")));
    ws.init();
    // CreateVolume reaches the emulator, but its answer is held back until Terraform and the provider are killed.
    proxy.interrupt_after(&ws, &["apply", "-auto-approve", "-input=false"], "ec2:CreateVolume");
    assert_eq!(volumes_named(&ec2, "dify-dev-data").await.len(), 1, "the emulator made the volume");
    assert!(ws.state_id("dify_persistent_volume.data").is_none(), "but Terraform never recorded it");

    ws.ok(&["apply", "-auto-approve", "-input=false", "-lock=false"]);
    let vols = volumes_named(&ec2, "dify-dev-data").await;
    assert_eq!(vols.len(), 1, "no second volume");
    assert_eq!(ws.outputs()["id"]["value"].as_str(), vols[0].volume_id(), "the state adopted the volume the first apply made");
    assert_eq!(proxy.count("ec2:CreateVolume"), 1);
    ws.assert_no_changes();
}

#[tokio::test]
async fn destroying_an_attached_volume_fails_naming_the_instance_and_keeps_it() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let ws = Workspace::new(&moto, &config(BASIC));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let id = ws.outputs()["id"]["value"].as_str().unwrap().to_string();
    let ami = ec2.describe_images().owners("amazon").send().await.unwrap().images.unwrap()[0].image_id.clone().unwrap();
    let instance = ec2
        .run_instances()
        .image_id(ami)
        .min_count(1)
        .max_count(1)
        .placement(aws_sdk_ec2::types::Placement::builder().availability_zone("us-east-1a").build())
        .send()
        .await
        .unwrap()
        .instances
        .unwrap()[0]
        .instance_id
        .clone()
        .unwrap();
    ec2.attach_volume().volume_id(&id).instance_id(&instance).device("/dev/sdf").send().await.unwrap();
    let out = ws.run(&["destroy", "-auto-approve", "-input=false"]);
    assert_ne!(out.code, 0);
    let text = out.flat();
    assert!(text.contains(&instance) && text.contains("removing it from the stack first"), "{}", out.all());
    let v = &volumes_named(&ec2, "dify-dev-data").await[0];
    assert_eq!(v.attachments().len(), 1, "still attached: never force-detached");
    let snaps = ec2.describe_snapshots().owner_ids("self").filters(Filter::builder().name("tag:dify:final-snapshot-of").values(&id).build()).send().await.unwrap();
    assert!(snaps.snapshots().is_empty(), "no snapshot taken for a destroy that cannot proceed");
}

fn mkfs_ext4() -> std::path::PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain(["/usr/sbin", "/sbin"]) {
        let p = std::path::Path::new(dir).join("mkfs.ext4");
        if p.exists() {
            return p;
        }
    }
    panic!("mkfs.ext4 not found: install e2fsprogs (make test does)");
}

/// An ext4 image of `size_mib` holding a marker file, as an existing Compose install's data folder would be.
fn ext4_image(dir: &std::path::Path, name: &str, marker: &str, size_mib: u32) -> std::path::PathBuf {
    let content = dir.join(format!("{name}-content"));
    std::fs::create_dir_all(content.join("app/storage/privkeys")).unwrap();
    std::fs::write(content.join("app/storage/privkeys/marker.txt"), marker).unwrap();
    let image = dir.join(name);
    let status = std::process::Command::new(mkfs_ext4())
        .args(["-q", "-F", "-E", "root_owner=0:0", "-d"])
        .arg(&content)
        .arg(&image)
        .arg(format!("{size_mib}M"))
        .status()
        .unwrap();
    assert!(status.success(), "mkfs.ext4 failed");
    image
}

#[tokio::test]
async fn source_image_round_trips_byte_for_byte_and_a_changed_image_plans_a_replacement() {
    use sha2::Digest;
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let ebs = aws_sdk_ebs::Client::new(&moto.sdk_config().await);
    let ws = Workspace::new(&moto, "").env("TF_LOG_PROVIDER", "DEBUG");
    let image = ext4_image(ws.dir.path(), "dify-volumes.img", "tenant key 1", 48);
    ws.write(
        "main.tf",
        &(config(&format!("  name = \"seeded\"\n  availability_zone = \"us-east-1a\"\n  size_gb = 1\n  final_snapshot = false\n  source_image = \"{}\"", image.display()))
            + "output \"snapshot\" { value = dify_persistent_volume.data.snapshot_id }\noutput \"sha\" { value = dify_persistent_volume.data.source_image_sha256 }\n"),
    );
    ws.init();
    let applied = ws.ok(&["apply", "-auto-approve", "-input=false"]);
    // The plan walk's provider reads the image; the apply walk's provider (a new process) reuses its hash.
    let hashed: Vec<&str> = applied.stderr.lines().filter(|l| l.contains("hashed source_image")).collect();
    assert_eq!(hashed.len(), 2, "{hashed:?}");
    assert!(hashed[0].contains("remembered=false") && hashed[1].contains("remembered=true"), "{hashed:?}");
    let out = ws.outputs();
    let snapshot = out["snapshot"]["value"].as_str().unwrap().to_string();
    let bytes = std::fs::read(&image).unwrap();
    let expected_sha: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(out["sha"]["value"], expected_sha.as_str());
    let volume = &volumes_named(&ec2, "seeded").await[0];
    assert_eq!(volume.snapshot_id(), Some(snapshot.as_str()), "the volume is created from the uploaded snapshot");

    // Read the snapshot back block by block and compare with the image.
    let block = 512 * 1024;
    let mut rebuilt = vec![0u8; bytes.len().div_ceil(block) * block];
    let mut next_token = None;
    let mut blocks = 0;
    loop {
        let page = ebs.list_snapshot_blocks().snapshot_id(&snapshot).set_next_token(next_token).send().await.unwrap();
        for b in page.blocks() {
            let data = ebs
                .get_snapshot_block()
                .snapshot_id(&snapshot)
                .block_index(b.block_index().unwrap())
                .block_token(b.block_token().unwrap())
                .send()
                .await
                .unwrap()
                .block_data
                .collect()
                .await
                .unwrap()
                .into_bytes();
            let at = b.block_index().unwrap() as usize * block;
            rebuilt[at..at + block].copy_from_slice(&data);
            blocks += 1;
        }
        next_token = page.next_token().map(str::to_string);
        if next_token.is_none() {
            break;
        }
    }
    assert!(blocks > 0 && blocks < bytes.len() / block, "zero blocks are skipped ({blocks} written)");
    assert_eq!(&rebuilt[..bytes.len()], &bytes[..], "the snapshot holds the image byte for byte");
    assert!(rebuilt[bytes.len()..].iter().all(|b| *b == 0));
    ws.assert_no_changes();

    // A changed image plans a replacement.
    std::fs::remove_file(&image).unwrap();
    ext4_image(ws.dir.path(), "dify-volumes.img", "tenant key 2", 48);
    let plan = ws.ok(&["plan", "-input=false"]);
    assert!(plan.stdout.contains("must be replaced") && plan.stdout.contains("source_image_sha256"), "{}", plan.stdout);
    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
}

#[tokio::test]
async fn an_image_larger_than_size_gb_is_refused_at_plan() {
    let moto = Moto::start();
    let ws = Workspace::new(&moto, "");
    let image = ws.dir.path().join("big.img");
    let f = std::fs::File::create(&image).unwrap();
    f.set_len((1u64 << 30) + 1).unwrap(); // sparse: 1 GiB + 1 byte
    ws.write("main.tf", &config(&format!("  name = \"v\"\n  availability_zone = \"us-east-1a\"\n  size_gb = 1\n  source_image = \"{}\"", image.display())));
    ws.init();
    let out = ws.run(&["plan", "-input=false"]);
    assert_ne!(out.code, 0);
    assert!(out.flat().contains("The image needs 2 GiB") && out.flat().contains("size_gb"), "{}", out.all());
}

#[tokio::test]
async fn an_interrupted_destroy_is_finished_with_one_final_snapshot() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let proxy = AwsProxy::start(&moto.endpoint());
    let ws = Workspace::via(&proxy.endpoint(), &config(BASIC));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let id = ws.outputs()["id"]["value"].as_str().unwrap().to_string();
    // The final snapshot is taken, then Terraform and the provider die before the volume is deleted.
    proxy.interrupt_after(&ws, &["destroy", "-auto-approve", "-input=false"], "ec2:CreateSnapshot");
    ws.ok(&["destroy", "-auto-approve", "-input=false", "-lock=false"]);
    assert!(volumes_named(&ec2, "dify-dev-data").await.is_empty(), "the volume is gone");
    let snaps = ec2.describe_snapshots().owner_ids("self").filters(Filter::builder().name("tag:dify:final-snapshot-of").values(&id).build()).send().await.unwrap();
    assert_eq!(snaps.snapshots().len(), 1, "the snapshot the interrupted destroy took is reused, not taken twice");
    assert_eq!(proxy.count("ec2:CreateSnapshot"), 1);
}
