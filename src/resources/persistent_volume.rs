//! Resource `dify_persistent_volume`: the EBS volume holding all of Dify's data — kept, grown in place, seeded from a
//! local disk image, snapshotted on destroy, and never force-detached.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType, SnapshotState, Volume, VolumeModificationState, VolumeState, VolumeType};
use serde::Deserialize;
use serde_json::json;

use crate::aws::snapshot_upload::{self, size_gib, UploadRequest};
use crate::aws::wait::{wait_until, Status};
use crate::aws::{ec2, errors, tags, AwsClients, OpExt};
use crate::framework::decode::decode;
use crate::framework::private::Private;
use crate::framework::resource::PlanRequest;
use crate::framework::schema::{Attribute, Block, IdentityAttribute, IdentitySchema, Schema};
use crate::framework::value::{Type, Value};
use crate::framework::{timeouts, validate};
use crate::framework::{AttrPath, Ctx, Diagnostic, Diagnostics, Resource, ResourceState};
use crate::log;

use super::planned_tags_all;

pub struct PersistentVolume;

pub const TYPE_NAME: &str = "dify_persistent_volume";
const VOLUME_TYPES: &[&str] = &["gp3", "gp2", "io2"];
const CREATE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const CREATE_WITH_IMAGE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const GP3_IOPS: (i64, i64) = (3000, 16000);
const GP3_THROUGHPUT: (i64, i64) = (125, 1000);
const GP3_DEFAULT_IOPS: i64 = 3000;
const IO2_IOPS: (i64, i64) = (100, 256000);
/// Private-state key caching the image's hash by size and modification time, so plans do not re-read an unchanged image.
const IMAGE_HASH_CACHE: &str = "source_image_hash";

/// The planned or configured volume, as create and update need it.
#[derive(Deserialize)]
struct Spec {
    name: String,
    availability_zone: String,
    size_gb: i64,
    r#type: String,
    iops: Option<i64>,
    throughput: Option<i64>,
    encrypted: bool,
    kms_key_id: Option<String>,
    snapshot_id: Option<String>,
    source_image: Option<String>,
    source_image_sha256: Option<String>,
    tags_all: Option<BTreeMap<String, String>>,
}

fn err_at(path: &str, summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
    Diagnostic::error(summary, detail).at(AttrPath::root(path))
}

#[async_trait]
impl Resource for PersistentVolume {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .description("An encrypted EBS volume for all of Dify's data (PostgreSQL, Redis, vector store, uploads, plugins, tenant keys). It outlives instances, grows in place, can be seeded from a local disk image, and is snapshotted before it is destroyed.")
                .attr(Attribute::string("id").computed().use_state_for_unknown().description("The volume id (`vol-…`)."))
                .attr(Attribute::string("arn").computed().use_state_for_unknown().description("The volume ARN."))
                .attr(Attribute::string("name").required().description("The volume's Name tag.").validate(validate::not_blank()))
                .attr(
                    Attribute::string("availability_zone")
                        .required()
                        .requires_replace()
                        .description("Availability zone of the volume; it must be the zone of the instance that mounts it. Checked against the region at plan.")
                        .validate(validate::not_blank()),
                )
                .attr(
                    Attribute::number("size_gb")
                        .default(Value::int(20))
                        .description("Size in GiB, 1–16384. Grows in place; EBS volumes cannot shrink.")
                        .validate(validate::int_between(1, 16384)),
                )
                .attr(Attribute::string("type").default(Value::string("gp3")).description("Volume type: `gp3`, `gp2` or `io2`. Changes in place.").validate(validate::one_of(VOLUME_TYPES)))
                .attr(Attribute::number("iops").optional().computed().description("Provisioned IOPS: 3000–16000 for gp3 (default 3000), required for io2, not settable for gp2. Changes in place."))
                .attr(Attribute::number("throughput").optional().computed().description("Throughput in MiB/s for gp3: 125–1000 and at most `iops`/4. Changes in place."))
                .attr(Attribute::bool("encrypted").default(Value::Bool(true)).requires_replace().description("Encrypt the volume (default true)."))
                .attr(Attribute::string("kms_key_id").optional().computed().use_state_for_unknown().requires_replace().description("KMS key for encryption; the account's default EBS key when unset."))
                .attr(
                    Attribute::string("snapshot_id")
                        .optional()
                        .computed()
                        .use_state_for_unknown()
                        .requires_replace()
                        .description("Create the volume from this snapshot. Computed: the snapshot the volume was created from (the uploaded one with `source_image`).")
                        .validate(validate::prefixed("snap-")),
                )
                .attr(
                    Attribute::string("source_image")
                        .optional()
                        .requires_replace()
                        .description("Path to a local raw disk image (e.g. an ext4 image of an existing Docker Compose install's `docker/volumes`) to upload with the EBS direct APIs into a new snapshot the volume is created from. Zero blocks are skipped. A changed file plans a replacement. Its SHA-256 is remembered in `$XDG_CACHE_HOME/terraform-provider-dify` (or `~/.cache`) by the file's path, inode, size and modification time, so a plan and its apply read the image once.")
                        .validate(validate::not_blank()),
                )
                .attr(Attribute::string("source_image_sha256").computed().description("SHA-256 of `source_image`, computed at plan."))
                .attr(Attribute::bool("final_snapshot").default(Value::Bool(true)).description("Snapshot the volume before destroying it (default true). The snapshot id is reported in a warning and the snapshot is tagged `dify:final-snapshot-of`."))
                .attr(Attribute::new("tags", Type::map(Type::String)).optional().description("Tags for the volume, merged over the provider's `default_tags`."))
                .attr(Attribute::new("tags_all", Type::map(Type::String)).computed().description("All tags of the volume, `default_tags` included."))
                .block(timeouts::block(&["create", "update", "delete"]))
                .check(validate::conflicting(&["snapshot_id", "source_image"])),
        )
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(IdentitySchema {
            version: 0,
            attributes: vec![IdentityAttribute { name: "id".into(), ty: Type::String, description: "The volume id (`vol-…`).".into(), required_for_import: true }],
        })
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate_performance(config, diags);
        if config.get("encrypted").as_bool() == Some(false) && !config.get("kms_key_id").is_null() {
            diags.error_at(AttrPath::root("kms_key_id"), "`kms_key_id` needs encryption", "remove `kms_key_id` or set `encrypted = true`.");
        }
    }

    async fn modify_plan(&self, ctx: &Ctx, plan: &mut PlanRequest<'_>, diags: &mut Diagnostics) {
        let aws = ctx.meta::<AwsClients>().ok();
        let (prior, config) = (plan.prior, plan.config);
        let creating = prior.is_null();

        plan.planned.set("tags_all", planned_tags_all(config, aws));

        // IOPS and throughput AWS decides stay as they are unless the type or size changes.
        let reshaped = creating || prior.get("type") != plan.planned.get("type") || prior.get("size_gb") != plan.planned.get("size_gb");
        for attr in ["iops", "throughput"] {
            if config.get(attr).is_null() {
                let v = if reshaped { Value::unknown() } else { prior.get(attr).clone() };
                plan.planned.set(attr, v);
            }
        }

        if let (Some(before), Some(after)) = (prior.get("size_gb").as_i64(), plan.planned.get("size_gb").as_i64()) {
            if after < before {
                diags.error_at(
                    AttrPath::root("size_gb"),
                    format!("EBS volumes cannot shrink ({before} GiB → {after} GiB)"),
                    "keep size_gb at its current value or larger. To move Dify's data to a smaller disk, create a second dify_persistent_volume, copy the data across on an instance (rsync of /opt/dify-data with Dify stopped), switch the stack's data_volume_ids to it, then remove the old volume.",
                );
            }
        }

        if let (Some(az), Some(aws)) = (plan.planned.get("availability_zone").as_str(), aws) {
            if creating || prior.get("availability_zone").as_str() != Some(az) {
                check_availability_zone(aws, az, diags).await;
            }
        }

        plan_source_image(plan, diags).await;
    }

    async fn create(&self, ctx: &Ctx, planned: &Value, _config: &Value, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let spec: Spec = decode(&planned.without_unknowns()).map_err(|d| diags.push(d)).ok()?;
        let default_timeout = if spec.source_image.is_some() { CREATE_WITH_IMAGE_TIMEOUT } else { CREATE_TIMEOUT };
        let timeout = timeouts::get(planned, "create", default_timeout);
        let token = create_token(&spec);
        let what = format!("creating EBS volume ({})", spec.name);

        let mut spec = spec;
        if spec.source_image.is_some() {
            match seed_snapshot(ctx, aws, &spec, &token, timeout).await {
                Ok(id) => spec.snapshot_id = Some(id),
                Err(e) => {
                    diags.error_at(AttrPath::root("source_image"), format!("Uploading {} for EBS volume ({})", spec.source_image.clone().unwrap_or_default(), spec.name), e);
                    return None;
                }
            }
        }

        let volume_id = match ec2::find_volume_by_tag(aws, tags::CREATE_TOKEN, &token).await {
            Ok(Some(id)) => {
                log::info("adopting the volume an interrupted apply created", &[("volume_id", id.clone().into())]);
                id
            }
            Ok(None) => match create_volume(aws, &spec, &token).await {
                Ok(id) => id,
                Err(e) => {
                    diags.error(format!("Error {what}"), e);
                    return None;
                }
            },
            Err(e) => {
                diags.error(format!("Error {what}"), e);
                return None;
            }
        };

        let waited = wait_until(&ctx.cancel, timeout, || async {
            let v = ec2::find_volume(aws, &volume_id).await?;
            Ok(match v.as_ref().and_then(|v| v.state()) {
                Some(VolumeState::Available) | Some(VolumeState::InUse) => Status::Done(v),
                Some(VolumeState::Error) => return Err(format!("volume {volume_id} entered the error state")),
                other => Status::Pending(other.map(|s| s.as_str().to_string()).unwrap_or_else(|| "not visible yet".into())),
            })
        })
        .await;
        match waited {
            Ok(Some(volume)) => Some(volume_state(planned, &volume, aws, diags)),
            Ok(None) => None,
            Err(e) => {
                // The volume exists: keep it in state (tainted by the error) so it is never orphaned.
                diags.error(format!("Error {what}: waiting for {volume_id} to become available"), e.to_string());
                let mut partial = planned.clone();
                partial.set("id", Value::string(&volume_id));
                for attr in ["arn", "iops", "throughput", "kms_key_id", "snapshot_id", "tags_all"] {
                    if partial.get(attr).is_unknown() {
                        partial.set(attr, Value::Null);
                    }
                }
                Some(ResourceState { state: partial, private: Private::default(), identity: Some(identity(&volume_id)) })
            }
        }
    }

    async fn read(&self, ctx: &Ctx, state: &Value, private: &Private, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let id = state.get("id").as_str()?.to_string();
        match ec2::find_volume(aws, &id).await {
            Ok(Some(v)) => {
                let mut rs = volume_state(state, &v, aws, diags);
                rs.private = private.clone();
                Some(rs)
            }
            Ok(None) => {
                log::warn("volume is gone; removing it from state", &[("volume_id", id.into())]);
                None
            }
            Err(e) => {
                diags.error(format!("Error reading EBS volume ({id})"), e);
                Some(ResourceState { state: state.clone(), private: private.clone(), identity: Some(identity(&id)) })
            }
        }
    }

    async fn update(&self, ctx: &Ctx, prior: &Value, planned: &Value, _config: &Value, private: &Private, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let id = prior.get("id").as_str().unwrap_or_default().to_string();
        let spec: Spec = decode(&planned.without_unknowns()).map_err(|d| diags.push(d)).ok()?;
        let timeout = timeouts::get(planned, "update", UPDATE_TIMEOUT);

        let mut current = BTreeMap::new();
        if let Some(t) = prior.get("tags_all").entries() {
            current = t.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect();
        }
        if let Some(n) = prior.get("name").as_str() {
            current.insert(tags::NAME.to_string(), n.to_string());
        }
        let mut wanted = spec.tags_all.clone().unwrap_or_default();
        wanted.insert(tags::NAME.to_string(), spec.name.clone());
        if let Err(e) = tags::sync_ec2(&aws.ec2, &id, &current, &wanted).await {
            diags.error(format!("Error updating tags of EBS volume ({id})"), e);
            return Some(ResourceState { state: prior.clone(), private: private.clone(), identity: Some(identity(&id)) });
        }

        let changed = |attr: &str| planned.get(attr) != prior.get(attr) && !planned.get(attr).is_unknown();
        let reshape = ["size_gb", "type", "iops", "throughput"].iter().any(|a| changed(a));
        if reshape {
            let mut req = aws.ec2.modify_volume().volume_id(&id);
            if changed("size_gb") {
                req = req.size(spec.size_gb as i32);
            }
            if changed("type") {
                req = req.volume_type(VolumeType::from(spec.r#type.as_str()));
            }
            if let Some(iops) = spec.iops.filter(|_| changed("iops") || changed("type")) {
                req = req.iops(iops as i32);
            }
            if let Some(t) = spec.throughput.filter(|_| changed("throughput") || changed("type")) {
                req = req.throughput(t as i32);
            }
            if let Err(e) = req.send().await.op("EC2 ModifyVolume", "") {
                diags.error(format!("Error modifying EBS volume ({id})"), e);
                return Some(ResourceState { state: prior.clone(), private: private.clone(), identity: Some(identity(&id)) });
            }
            let waited = wait_until(&ctx.cancel, timeout, || async {
                let out = aws.ec2.describe_volumes_modifications().volume_ids(&id).send().await.op("EC2 DescribeVolumesModifications", "")?;
                let m = out.volumes_modifications().iter().max_by_key(|m| m.start_time().map(|t| t.secs()));
                Ok(match m.and_then(|m| m.modification_state()) {
                    Some(VolumeModificationState::Optimizing) | Some(VolumeModificationState::Completed) => Status::Done(()),
                    Some(VolumeModificationState::Failed) => return Err(format!("the modification failed: {}", m.and_then(|m| m.status_message()).unwrap_or("no reason given"))),
                    other => Status::Pending(other.map(|s| s.as_str().to_string()).unwrap_or_else(|| "modifying".into())),
                })
            })
            .await;
            if let Err(e) = waited {
                diags.error(format!("Error modifying EBS volume ({id})"), e.to_string());
            }
        }

        match ec2::find_volume(aws, &id).await {
            Ok(Some(v)) => {
                let mut rs = volume_state(planned, &v, aws, diags);
                rs.private = private.clone();
                Some(rs)
            }
            Ok(None) => {
                diags.error(format!("Error updating EBS volume ({id})"), "the volume disappeared during the update");
                None
            }
            Err(e) => {
                diags.error(format!("Error reading EBS volume ({id}) after update"), e);
                Some(ResourceState { state: prior.clone(), private: private.clone(), identity: Some(identity(&id)) })
            }
        }
    }

    async fn delete(&self, ctx: &Ctx, prior: &Value, _private: &Private, diags: &mut Diagnostics) {
        let Ok(aws) = ctx.meta::<AwsClients>().map_err(|d| diags.push(d)) else { return };
        let id = prior.get("id").as_str().unwrap_or_default().to_string();
        let timeout = timeouts::get(prior, "delete", DELETE_TIMEOUT);
        let volume = match ec2::find_volume(aws, &id).await {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(e) => {
                diags.error(format!("Error deleting EBS volume ({id})"), e);
                return;
            }
        };
        let attached: Vec<String> = volume
            .attachments()
            .iter()
            .map(|a| format!("{} as {}", a.instance_id().unwrap_or("an instance"), a.device().unwrap_or("a device")))
            .collect();
        if !attached.is_empty() {
            diags.error(
                format!("EBS volume ({id}) is still attached"),
                format!(
                    "it is attached to {}. Detach it by removing it from the stack first (dify_ec2_stack's data_volume_ids), apply, then destroy the volume. The provider never force-detaches a mounted database disk.",
                    attached.join(", ")
                ),
            );
            return;
        }

        if prior.get("final_snapshot").as_bool() != Some(false) {
            match final_snapshot(ctx, aws, &volume, timeout).await {
                Ok(snapshot_id) => diags.push(Diagnostic::warning(
                    format!("Final snapshot {snapshot_id} of EBS volume ({id})"),
                    format!("the volume's data is kept in snapshot {snapshot_id} (tagged {}={id}). Restore it with snapshot_id = \"{snapshot_id}\"; delete the snapshot when it is no longer needed.", tags::FINAL_SNAPSHOT_OF),
                )),
                Err(e) => {
                    diags.error(format!("Error taking the final snapshot of EBS volume ({id})"), format!("{e}. The volume was not deleted."));
                    return;
                }
            }
        }

        if let Err(e) = errors::found(aws.ec2.delete_volume().volume_id(&id).send().await.op("EC2 DeleteVolume", "")) {
            diags.error(format!("Error deleting EBS volume ({id})"), e);
            return;
        }
        let waited = wait_until(&ctx.cancel, timeout, || async {
            Ok(match ec2::find_volume(aws, &id).await? {
                None => Status::Done(()),
                Some(v) => Status::Pending(v.state().map(|s| s.as_str().to_string()).unwrap_or_default()),
            })
        })
        .await;
        if let Err(e) = waited {
            diags.error(format!("Error deleting EBS volume ({id})"), e.to_string());
        }
    }

    async fn import(&self, ctx: &Ctx, id: &str, identity_value: Option<&Value>, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let id = identity_value.and_then(|i| i.get("id").as_str()).unwrap_or(id).trim().to_string();
        if !id.starts_with("vol-") {
            diags.error(format!("Cannot import {id:?} as a dify_persistent_volume"), "give the EBS volume id, such as vol-0123456789abcdef0.");
            return None;
        }
        match ec2::find_volume(aws, &id).await {
            Ok(Some(v)) => {
                let base = crate::object! {
                    "id" => Value::string(&id),
                    "final_snapshot" => Value::Bool(true),
                };
                Some(volume_state(&base, &v, aws, diags))
            }
            Ok(None) => {
                diags.error(format!("Cannot import EBS volume ({id})"), format!("no volume {id} in {}; check the id and the region.", aws.region));
                None
            }
            Err(e) => {
                diags.error(format!("Error importing EBS volume ({id})"), e);
                None
            }
        }
    }
}

fn identity(id: &str) -> Value {
    crate::object! {"id" => Value::string(id)}
}

/// gp3/io2/gp2 IOPS and throughput rules, checked on whatever is known.
fn validate_performance(config: &Value, diags: &mut Diagnostics) {
    let ty = config.get("type");
    let ty = if ty.is_null() { Some("gp3") } else { ty.as_str() };
    let iops = config.get("iops");
    let throughput = config.get("throughput");
    let Some(ty) = ty else { return };
    match ty {
        "gp3" => {
            if let Some(i) = iops.as_i64() {
                if !(GP3_IOPS.0..=GP3_IOPS.1).contains(&i) {
                    diags.error_at(AttrPath::root("iops"), "Invalid value for `iops`", format!("gp3 volumes take {}–{} IOPS; got {i}.", GP3_IOPS.0, GP3_IOPS.1));
                }
            }
            if let Some(t) = throughput.as_i64() {
                if !(GP3_THROUGHPUT.0..=GP3_THROUGHPUT.1).contains(&t) {
                    diags.error_at(AttrPath::root("throughput"), "Invalid value for `throughput`", format!("gp3 throughput is {}–{} MiB/s; got {t}.", GP3_THROUGHPUT.0, GP3_THROUGHPUT.1));
                } else if !iops.is_unknown() {
                    let i = iops.as_i64().unwrap_or(GP3_DEFAULT_IOPS);
                    if t > i / 4 {
                        diags.error_at(
                            AttrPath::root("throughput"),
                            "Invalid value for `throughput`",
                            format!("gp3 throughput may be at most iops/4 = {} MiB/s with {i} IOPS; raise `iops` to at least {} or lower `throughput`.", i / 4, t * 4),
                        );
                    }
                }
            }
        }
        "io2" => {
            if iops.is_null() {
                diags.error_at(AttrPath::root("iops"), "Missing `iops` for io2", format!("io2 volumes need provisioned IOPS: set `iops` ({}–{}).", IO2_IOPS.0, IO2_IOPS.1));
            } else if let Some(i) = iops.as_i64().filter(|i| !(IO2_IOPS.0..=IO2_IOPS.1).contains(i)) {
                diags.error_at(AttrPath::root("iops"), "Invalid value for `iops`", format!("io2 volumes take {}–{} IOPS; got {i}.", IO2_IOPS.0, IO2_IOPS.1));
            }
            if !throughput.is_null() {
                diags.error_at(AttrPath::root("throughput"), "`throughput` is for gp3 only", "remove `throughput`; io2 performance is set by `iops`.");
            }
        }
        "gp2" => {
            if !iops.is_null() {
                diags.error_at(AttrPath::root("iops"), "`iops` cannot be set for gp2", "gp2 IOPS follow the size (3 per GiB); remove `iops`, or use type = \"gp3\" to provision IOPS.");
            }
            if !throughput.is_null() {
                diags.error_at(AttrPath::root("throughput"), "`throughput` is for gp3 only", "remove `throughput`, or use type = \"gp3\".");
            }
        }
        _ => {}
    }
}

async fn check_availability_zone(aws: &AwsClients, az: &str, diags: &mut Diagnostics) {
    match aws.ec2.describe_availability_zones().send().await.op("EC2 DescribeAvailabilityZones", "") {
        Ok(out) => {
            let zones: Vec<&str> = out.availability_zones().iter().filter_map(|z| z.zone_name()).collect();
            if !zones.contains(&az) {
                diags.push(err_at(
                    "availability_zone",
                    format!("No availability zone {az:?} in {}", aws.region),
                    format!("use one of: {}.", zones.join(", ")),
                ));
            }
        }
        Err(e) => diags.push(err_at("availability_zone", "Checking the availability zone", e)),
    }
}

/// Hashes `source_image` at plan (reusing the prior hash when size and modification time are unchanged, or one an
/// earlier provider process remembered: `image_hash`), checks it fits `size_gb`, and plans a replacement when the
/// file changed.
async fn plan_source_image(plan: &mut PlanRequest<'_>, diags: &mut Diagnostics) {
    let path = match plan.planned.get("source_image") {
        Value::String(p) => p.clone(),
        Value::Unknown(_) => {
            plan.planned.set("source_image_sha256", Value::unknown());
            return;
        }
        _ => {
            if plan.prior.is_null() || plan.prior.get("source_image").is_null() {
                plan.planned.set("source_image_sha256", Value::Null);
            }
            return;
        }
    };
    let meta = match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return diags.push(err_at("source_image", format!("{path} is not a file"), "give the path of a raw disk image file.")),
        Err(e) => return diags.push(err_at("source_image", format!("Cannot read {path}"), format!("{e}; give the path of a raw disk image file, relative to the directory terraform runs in."))),
    };
    let needed = size_gib(meta.len());
    if let Some(size) = plan.planned.get("size_gb").as_i64() {
        if needed > size {
            diags.push(err_at("size_gb", format!("The image needs {needed} GiB"), format!("{path} is {} bytes, which rounds up to {needed} GiB; set size_gb to at least {needed}.", meta.len())));
        }
    }
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let fingerprint = json!({"path": path, "len": meta.len(), "mtime": mtime});
    let cached = plan.prior_private.get(IMAGE_HASH_CACHE).filter(|c| c.get("fingerprint") == Some(&fingerprint)).and_then(|c| c.get("sha256")).and_then(|s| s.as_str()).map(str::to_string);
    let sha = match cached {
        Some(s) => s,
        None => {
            let p = path.clone();
            match tokio::task::spawn_blocking(move || super::image_hash::sha256(&p, &meta)).await {
                Ok(Ok((s, remembered))) => {
                    log::debug("hashed source_image", &[("path", path.clone().into()), ("remembered", remembered.into())]);
                    s
                }
                Ok(Err(e)) => return diags.push(err_at("source_image", format!("Cannot read {path}"), e)),
                Err(e) => return diags.push(err_at("source_image", "Hashing the image failed", e.to_string())),
            }
        }
    };
    plan.planned_private.set(IMAGE_HASH_CACHE, json!({"fingerprint": fingerprint, "sha256": sha}));
    if let Some(before) = plan.prior.get("source_image_sha256").as_str() {
        if before != sha {
            plan.requires_replace.push(AttrPath::root("source_image_sha256"));
        }
    }
    plan.planned.set("source_image_sha256", Value::String(sha));
}

/// The idempotency token of a create: everything that defines the volume, so a retried apply of the same plan
/// finds the volume an interrupted one made, and a different volume never matches.
fn create_token(spec: &Spec) -> String {
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    tags::client_token(&[
        TYPE_NAME,
        &spec.name,
        &spec.availability_zone,
        &spec.size_gb.to_string(),
        &spec.r#type,
        &num(spec.iops),
        &num(spec.throughput),
        &spec.encrypted.to_string(),
        spec.kms_key_id.as_deref().unwrap_or_default(),
        spec.snapshot_id.as_deref().unwrap_or_default(),
        spec.source_image_sha256.as_deref().unwrap_or_default(),
    ])
}

async fn create_volume(aws: &AwsClients, spec: &Spec, token: &str) -> Result<String, String> {
    let mut all_tags = spec.tags_all.clone().unwrap_or_default();
    all_tags.insert(tags::NAME.to_string(), spec.name.clone());
    all_tags.insert(tags::CREATE_TOKEN.to_string(), token.to_string());
    let mut req = aws
        .ec2
        .create_volume()
        .availability_zone(&spec.availability_zone)
        .size(spec.size_gb as i32)
        .volume_type(VolumeType::from(spec.r#type.as_str()))
        .encrypted(spec.encrypted)
        .client_token(token)
        .tag_specifications(tags::specification(ResourceType::Volume, &all_tags));
    if let Some(i) = spec.iops {
        req = req.iops(i as i32);
    }
    if let Some(t) = spec.throughput {
        req = req.throughput(t as i32);
    }
    if let Some(k) = &spec.kms_key_id {
        req = req.kms_key_id(k);
    }
    if let Some(s) = &spec.snapshot_id {
        req = req.snapshot_id(s);
    }
    let out = req.send().await.op("EC2 CreateVolume", "")?;
    out.volume_id.ok_or_else(|| "EC2 CreateVolume returned no volume id".to_string())
}

/// Uploads `source_image` into a snapshot (or reuses the completed one an interrupted apply uploaded) and waits for it.
async fn seed_snapshot(ctx: &Ctx, aws: &AwsClients, spec: &Spec, token: &str, timeout: Duration) -> Result<String, String> {
    let source_token = tags::client_token(&[token, "source-image"]);
    let existing = aws
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(Filter::builder().name(format!("tag:{}", tags::CREATE_TOKEN)).values(&source_token).build())
        .send()
        .await
        .op("EC2 DescribeSnapshots", "")?
        .snapshots
        .unwrap_or_default();
    if let Some(done) = existing.iter().find(|s| s.state() == Some(&SnapshotState::Completed)) {
        return Ok(done.snapshot_id().unwrap_or_default().to_string());
    }
    for unfinished in existing.iter().filter_map(|s| s.snapshot_id()) {
        // An interrupted upload leaves a pending snapshot nobody can complete: remove it rather than orphan it.
        let _ = aws.ec2.delete_snapshot().snapshot_id(unfinished).send().await;
    }
    let path = spec.source_image.clone().unwrap_or_default();
    let mut snapshot_tags = spec.tags_all.clone().unwrap_or_default();
    snapshot_tags.insert(tags::NAME.to_string(), format!("{}-source", spec.name));
    snapshot_tags.insert(tags::CREATE_TOKEN.to_string(), source_token.clone());
    let req = UploadRequest {
        path: path.into(),
        volume_size_gib: spec.size_gb,
        description: format!("Seed of Dify data volume {} (dify_persistent_volume)", spec.name),
        tags: snapshot_tags,
        client_token: source_token,
        encrypted: spec.encrypted,
        kms_key_arn: spec.kms_key_id.clone(),
    };
    let uploaded = snapshot_upload::upload(&aws.ebs, &aws.ec2, &ctx.cancel, &req).await?;
    log::info(
        "image uploaded",
        &[("snapshot_id", uploaded.snapshot_id.clone().into()), ("blocks_written", uploaded.blocks_written.into()), ("blocks_skipped", uploaded.blocks_skipped.into())],
    );
    wait_snapshot_completed(ctx, aws, &uploaded.snapshot_id, timeout).await?;
    Ok(uploaded.snapshot_id)
}

async fn wait_snapshot_completed(ctx: &Ctx, aws: &AwsClients, snapshot_id: &str, timeout: Duration) -> Result<(), String> {
    wait_until(&ctx.cancel, timeout, || async {
        let out = aws.ec2.describe_snapshots().snapshot_ids(snapshot_id).send().await.op("EC2 DescribeSnapshots", "")?;
        let snap = out.snapshots().first();
        Ok(match snap.and_then(|s| s.state()) {
            Some(SnapshotState::Completed) => Status::Done(()),
            Some(SnapshotState::Error) => return Err(format!("snapshot {snapshot_id} failed: {}", snap.and_then(|s| s.state_message()).unwrap_or("no reason given"))),
            _ => Status::Pending(format!("snapshot {}", snap.and_then(|s| s.progress()).unwrap_or("pending"))),
        })
    })
    .await
    .map_err(|e| e.to_string())
}

/// Takes (or finds, after an interrupted destroy) the final snapshot of `volume` and waits for it to complete.
async fn final_snapshot(ctx: &Ctx, aws: &AwsClients, volume: &Volume, timeout: Duration) -> Result<String, String> {
    let id = volume.volume_id().unwrap_or_default();
    let existing = aws
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(Filter::builder().name(format!("tag:{}", tags::FINAL_SNAPSHOT_OF)).values(id).build())
        .send()
        .await
        .op("EC2 DescribeSnapshots", "")?
        .snapshots
        .unwrap_or_default();
    let snapshot_id = match existing.iter().find(|s| s.state() != Some(&SnapshotState::Error)) {
        Some(s) => s.snapshot_id().unwrap_or_default().to_string(),
        None => {
            let mut snap_tags = tags::user_visible(&tags::from_ec2(volume.tags()));
            if let Some(name) = tags::from_ec2(volume.tags()).get(tags::NAME) {
                snap_tags.insert(tags::NAME.to_string(), format!("{name}-final"));
            }
            snap_tags.insert(tags::FINAL_SNAPSHOT_OF.to_string(), id.to_string());
            aws.ec2
                .create_snapshot()
                .volume_id(id)
                .description(format!("Final snapshot of Dify data volume {id}, taken before it was destroyed"))
                .tag_specifications(tags::specification(ResourceType::Snapshot, &snap_tags))
                .send()
                .await
                .op("EC2 CreateSnapshot", "")?
                .snapshot_id
                .unwrap_or_default()
        }
    };
    wait_snapshot_completed(ctx, aws, &snapshot_id, timeout).await?;
    Ok(snapshot_id)
}

/// State from what AWS reports, keeping from `base` what only Terraform knows (source image, final_snapshot,
/// timeouts) and the configured spelling of `kms_key_id`.
fn volume_state(base: &Value, v: &Volume, aws: &AwsClients, _diags: &mut Diagnostics) -> ResourceState {
    let id = v.volume_id().unwrap_or_default().to_string();
    let all = tags::from_ec2(v.tags());
    let visible = tags::user_visible(&all);
    let (own_tags, tags_all) = super::state_tags(base, &visible, aws);
    let owner = v.owner_id().map(str::to_string).or_else(|| aws.account_id.clone()).unwrap_or_default();
    let partition = if aws.region.starts_with("cn-") { "aws-cn" } else if aws.region.starts_with("us-gov-") { "aws-us-gov" } else { "aws" };
    let arn = v.volume_arn().map(str::to_string).unwrap_or_else(|| format!("arn:{partition}:ec2:{}:{owner}:volume/{id}", aws.region));
    let opt_num = |n: Option<i32>| n.map(|n| Value::int(n as i64)).unwrap_or(Value::Null);
    let kms = match base.get("kms_key_id") {
        Value::String(k) => Value::string(k),
        _ => v.kms_key_id().map(Value::string).unwrap_or(Value::Null),
    };
    let mut state = crate::object! {
        "id" => Value::string(&id),
        "arn" => Value::String(arn),
        "name" => all.get(tags::NAME).map(Value::string).unwrap_or(Value::Null),
        "availability_zone" => v.availability_zone().map(Value::string).unwrap_or(Value::Null),
        "size_gb" => opt_num(v.size()),
        "type" => v.volume_type().map(|t| Value::string(t.as_str())).unwrap_or(Value::Null),
        "iops" => opt_num(v.iops()),
        "throughput" => opt_num(v.throughput()),
        "encrypted" => Value::Bool(v.encrypted().unwrap_or(false)),
        "kms_key_id" => kms,
        "snapshot_id" => v.snapshot_id().filter(|s| !s.is_empty()).map(Value::string).unwrap_or(Value::Null),
        "source_image" => base.get("source_image").clone(),
        "source_image_sha256" => base.get("source_image_sha256").clone(),
        "final_snapshot" => base.get("final_snapshot").clone(),
        "tags" => own_tags,
        "tags_all" => tags_all,
        "timeouts" => base.get(timeouts::BLOCK_NAME).clone(),
    };
    if state.get("final_snapshot").is_null() || state.get("final_snapshot").is_unknown() {
        state.set("final_snapshot", Value::Bool(true));
    }
    ResourceState { state, private: Private::default(), identity: Some(identity(&id)) }
}

pub fn resource() -> Arc<dyn Resource> {
    Arc::new(PersistentVolume)
}
