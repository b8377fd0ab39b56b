//! State compatibility: the state each release wrote, kept as golden files (tests/golden/state/<release>/<type>.json:
//! one resource instance's `schema_version`, `attributes` and identity as Terraform 1.15.5 wrote them applying the
//! dev env folder), upgraded by the current provider over UpgradeResourceState as Terraform does before any plan.
//! Every attribute survives with its value unless DROPPED lists it with the reason; attributes the release did not
//! have come up null. A schema change ships an upgrader and a new golden directory (docs/design.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value as Json;
use terraform_provider_dify::framework::{Provider, Type};
use terraform_provider_dify::protocol::codec;
use terraform_provider_dify::protocol::proto::tfplugin6 as pb;
use terraform_provider_dify::provider::DifyProvider;

use crate::environments::{in_env, prepare};
use crate::harness::{root, Moto};
use crate::protocol::{client_identity, free_port_range, mtls_channel, start_as_terraform};

/// Attributes (resource type, path in the golden file) the current schema no longer has, on purpose, and why.
/// Everything else a release stored must come back with its value.
const DROPPED: &[(&str, &str, &str)] = &[];

fn golden_root() -> PathBuf {
    root().join("tests/golden/state")
}

/// Golden directories, oldest release first.
fn releases() -> Vec<(String, PathBuf)> {
    let mut dirs: Vec<(String, PathBuf)> = std::fs::read_dir(golden_root())
        .expect("tests/golden/state")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), p))
        .collect();
    let key = |v: &str| v.split('.').map(|n| n.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
    dirs.sort_by_key(|(v, _)| key(v));
    dirs
}

/// Rewrites tests/golden/state/<this crate's version>/ from a real apply of the dev env folder against the emulator.
/// Run it once per release whose schemas changed, and never over a released directory:
/// `cargo test --locked --test integration -- --ignored golden_state_files_are_written_by_this_release`.
#[tokio::test]
#[ignore = "writes golden files: run by hand after a schema change"]
async fn golden_state_files_are_written_by_this_release() {
    let moto = Moto::start();
    let (ws, vars) = prepare("dev", "10.17", &moto, &moto.endpoint()).await;
    let out = in_env(&ws, "dev", &["apply", "-auto-approve", "-input=false"], &vars);
    assert_eq!(out.code, 0, "dev apply:\n{}", out.all());
    let state: Json = serde_json::from_str(&std::fs::read_to_string(ws.dir.path().join("environments/dev/terraform.tfstate")).unwrap()).unwrap();
    let dir = golden_root().join(env!("CARGO_PKG_VERSION"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut written = Vec::new();
    for resource in state["resources"].as_array().unwrap().iter().filter(|r| r["mode"] == "managed") {
        let type_name = resource["type"].as_str().unwrap();
        let instance = &resource["instances"][0];
        let mut golden = serde_json::Map::new();
        golden.insert("terraform_version".into(), state["terraform_version"].clone());
        golden.insert("provider".into(), resource["provider"].clone());
        for key in ["schema_version", "attributes", "sensitive_attributes", "identity_schema_version", "identity"] {
            if let Some(v) = instance.get(key) {
                golden.insert(key.into(), v.clone());
            }
        }
        let text = serde_json::to_string_pretty(&Json::Object(golden)).unwrap() + "\n";
        let found = crate::security::leaked(&text);
        assert!(found.is_empty(), "{type_name}: the state holds secret values {found:?}");
        std::fs::write(dir.join(format!("{type_name}.json")), text).unwrap();
        written.push(type_name.to_string());
    }
    written.sort();
    let mut expected: Vec<String> = DifyProvider.resources().iter().map(|r| r.type_name().to_string()).collect();
    expected.sort();
    assert_eq!(written, expected, "the dev env folder holds one instance of every resource");
}

/// Compares what a release stored with what the current provider made of it; reports each difference.
fn compare(type_name: &str, path: &str, stored: &Json, upgraded: &Json, problems: &mut Vec<String>) {
    let join = |name: &str| if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
    match (stored, upgraded) {
        (Json::Object(s), Json::Object(u)) => {
            for (k, sv) in s {
                let p = join(k);
                let dropped = DROPPED.iter().any(|(t, a, _)| *t == type_name && *a == p);
                match (u.get(k), dropped) {
                    (None, false) => problems.push(format!("{type_name}.{p}: lost (list it in DROPPED with the reason if on purpose)")),
                    (Some(_), true) => problems.push(format!("{type_name}.{p}: listed in DROPPED but still in the schema")),
                    (Some(uv), false) => compare(type_name, &p, sv, uv, problems),
                    (None, true) => {}
                }
            }
            for (k, uv) in u.iter().filter(|(k, _)| !s.contains_key(*k)) {
                if !uv.is_null() {
                    problems.push(format!("{type_name}.{}: not stored by the release, yet upgraded to {uv}, not null", join(k)));
                }
            }
        }
        (Json::Array(s), Json::Array(u)) if s.len() == u.len() => {
            for (i, (sv, uv)) in s.iter().zip(u).enumerate() {
                compare(type_name, &format!("{path}[{i}]"), sv, uv, problems);
            }
        }
        (Json::Number(s), Json::Number(u)) if s.as_f64() == u.as_f64() => {}
        (s, u) if s == u => {}
        (s, u) => problems.push(format!("{type_name}.{path}: stored {s}, upgraded {u}")),
    }
}

fn errors(diags: &[pb::Diagnostic]) -> Vec<String> {
    diags.iter().map(|d| format!("{}: {}", d.summary, d.detail)).collect()
}

#[tokio::test]
async fn every_release_s_golden_state_upgrades_to_the_current_schema() {
    let current: BTreeMap<String, (i64, Type)> =
        DifyProvider.resources().iter().map(|r| (r.type_name().to_string(), (r.schema().version, r.schema().ty()))).collect();
    let identity_types: BTreeMap<String, Type> = DifyProvider.resources().iter().filter_map(|r| r.identity_schema().map(|i| (r.type_name().to_string(), i.ty()))).collect();
    let client = client_identity();
    let p = start_as_terraform(&client, free_port_range());
    let mut provider = pb::provider_client::ProviderClient::new(mtls_channel(p.addr, p.server_der.clone(), &client).await.unwrap());

    let mut problems = Vec::new();
    let mut newest_golden: BTreeMap<String, i64> = BTreeMap::new();
    let releases = releases();
    assert!(releases.iter().any(|(v, _)| v == "0.1.0"), "the 0.1.0 golden state is checked in");
    for (release, dir) in &releases {
        for file in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
            let type_name = file.file_stem().unwrap().to_string_lossy().to_string();
            let golden: Json = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let Some((_, ty)) = current.get(&type_name) else {
                problems.push(format!("{release}/{type_name}: the provider no longer has this resource"));
                continue;
            };
            let version = golden["schema_version"].as_i64().expect("schema_version");
            newest_golden.insert(type_name.clone(), version);
            let resp = provider
                .upgrade_resource_state(pb::upgrade_resource_state::Request {
                    type_name: type_name.clone(),
                    version,
                    raw_state: Some(pb::RawState { json: serde_json::to_vec(&golden["attributes"]).unwrap(), flatmap: Default::default() }),
                })
                .await
                .unwrap()
                .into_inner();
            assert!(resp.diagnostics.is_empty(), "{release}/{type_name}: {:?}", errors(&resp.diagnostics));
            let value = codec::decode_msgpack(&resp.upgraded_state.expect("an upgraded state").msgpack, ty).unwrap();
            let mut found = Vec::new();
            compare(&type_name, "", &golden["attributes"], &value.to_json().unwrap(), &mut found);
            problems.extend(found.into_iter().map(|f| format!("{release}: {f}")));

            if let (Some(identity), Some(ity)) = (golden.get("identity").filter(|i| !i.is_null()), identity_types.get(&type_name)) {
                let resp = provider
                    .upgrade_resource_identity(pb::upgrade_resource_identity::Request {
                        type_name: type_name.clone(),
                        version: golden["identity_schema_version"].as_i64().unwrap_or(0),
                        raw_identity: Some(pb::RawState { json: serde_json::to_vec(identity).unwrap(), flatmap: Default::default() }),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert!(resp.diagnostics.is_empty(), "{release}/{type_name} identity: {:?}", errors(&resp.diagnostics));
                let data = resp.upgraded_identity.and_then(|i| i.identity_data).expect("an upgraded identity");
                let upgraded = codec::decode_msgpack(&data.msgpack, ity).unwrap().to_json().unwrap();
                let mut found = Vec::new();
                compare(&format!("{type_name} identity"), "", identity, &upgraded, &mut found);
                problems.extend(found.into_iter().map(|f| format!("{release}: {f}")));
            }
        }
    }
    assert!(problems.is_empty(), "golden state does not survive the upgrade:\n{}", problems.join("\n"));

    for (type_name, (version, _)) in &current {
        assert_eq!(
            newest_golden.get(type_name),
            Some(version),
            "{type_name} is at schema version {version}: check in a golden state of that version (a new tests/golden/state/<release>/, see golden_state_files_are_written_by_this_release)"
        );
        // A state from a provider newer than this one is refused, naming the resource and both versions.
        let resp = provider
            .upgrade_resource_state(pb::upgrade_resource_state::Request {
                type_name: type_name.clone(),
                version: version + 1,
                raw_state: Some(pb::RawState { json: b"{}".to_vec(), flatmap: Default::default() }),
            })
            .await
            .unwrap()
            .into_inner();
        let text = errors(&resp.diagnostics).join("\n");
        assert!(resp.upgraded_state.is_none() && text.contains(type_name.as_str()) && text.contains(&format!("version {}", version + 1)) && text.contains(&format!("version {version}")), "{text}");
    }
}
