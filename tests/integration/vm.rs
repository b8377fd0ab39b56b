//! Inputs for the VM twin (`make test-vm`, tests/vm/): a stack applied through real Terraform against the emulator,
//! and what its instance would see — the rendered user data cloud-init consumes, the instance id and the instance
//! tags its metadata serves (the data volume's id among them). Written to `target/vm/stack.json`, and the user data
//! alone to `target/vm/user-data.yaml`.

use crate::ec2_stack::{config, setup, stack_instances, ONE};
use crate::harness::{root, Moto, Workspace};

#[tokio::test]
#[ignore = "run by `make test-vm`, which boots what it writes"]
async fn vm_twin_inputs_from_an_applied_stack() {
    let moto = Moto::start();
    let (ec2, net, cert) = setup(&moto).await;
    let ws = Workspace::new(&moto, &config(&net, &cert, ONE));
    ws.init();
    ws.ok(&["apply", "-auto-approve", "-input=false"]);
    let out = ws.outputs()["stack"]["value"].clone();
    let instance = stack_instances(&ec2, "dify-app").await.remove(0);
    let tags: serde_json::Map<String, serde_json::Value> = instance.tags().iter().filter_map(|t| Some((t.key()?.to_string(), serde_json::Value::from(t.value()?)))).collect();
    let volume = out["data_volume_ids"][0].as_str().unwrap();
    assert_eq!(tags.get("dify:data-volume").and_then(|v| v.as_str()), Some(volume), "the instance names its data volume in a tag");
    let inputs = serde_json::json!({
        "user_data": out["rendered_user_data"],
        "instance_id": out["instance_ids"][0],
        "volume_id": volume,
        "tags": tags,
    });
    let dir = root().join("target/vm");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stack.json"), serde_json::to_string_pretty(&inputs).unwrap()).unwrap();
    std::fs::write(dir.join("user-data.yaml"), out["rendered_user_data"].as_str().unwrap()).unwrap();
    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
}
