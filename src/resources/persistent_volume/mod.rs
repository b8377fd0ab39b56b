//! Resource `dify_persistent_volume`: the EBS volume holding all of Dify's data — kept, grown in place, seeded from a
//! local disk image, snapshotted on destroy, backed up on a schedule, and never force-detached.

mod backup;
mod create;
mod plan;
mod snapshots;
mod state;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{VolumeModificationState, VolumeType};
use serde::Deserialize;

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

use self::snapshots::{final_snapshot, seed_snapshot};
use self::state::{identity, volume_state};

pub struct PersistentVolume;

pub const TYPE_NAME: &str = "dify_persistent_volume";
const VOLUME_TYPES: &[&str] = &["gp3", "gp2", "io2"];
const CREATE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const CREATE_WITH_IMAGE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(20 * 60);

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

#[async_trait]
impl Resource for PersistentVolume {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .description("An encrypted EBS volume for all of Dify's data (PostgreSQL, Redis, vector store, uploads, plugins, tenant keys). It outlives instances, grows in place, can be seeded from a local disk image, can be backed up on a schedule (`backup`, by EBS Data Lifecycle Manager), and is snapshotted before it is destroyed.")
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
                        .description("Size in GiB, 1–16384. Grows in place, and the instance's filesystem follows while it runs (no restart); EBS volumes cannot shrink.")
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
                .block(backup::block())
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
        plan::validate(config, diags);
    }

    async fn modify_plan(&self, ctx: &Ctx, plan: &mut PlanRequest<'_>, diags: &mut Diagnostics) {
        plan::modify(ctx.meta::<AwsClients>().ok(), plan, diags).await;
    }

    async fn create(&self, ctx: &Ctx, planned: &Value, _config: &Value, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let spec: Spec = decode(&planned.without_unknowns()).map_err(|d| diags.push(d)).ok()?;
        let default_timeout = if spec.source_image.is_some() { CREATE_WITH_IMAGE_TIMEOUT } else { CREATE_TIMEOUT };
        let timeout = timeouts::get(planned, "create", default_timeout);
        let token = create::token(&spec);
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

        let volume_id = match create::find_or_create(aws, &spec, &token).await {
            Ok(id) => id,
            Err(e) => {
                diags.error(format!("Error {what}"), e);
                return None;
            }
        };
        let waited = create::wait_available(&ctx.cancel, aws, &volume_id, timeout).await;
        match waited {
            Ok(Some(volume)) => {
                let mut rs = volume_state(planned, &volume, aws, diags);
                let backup = match backup::converge(aws, &volume_id, &Value::Null, planned.get(backup::BLOCK), &BTreeMap::new(), &policy_tags(spec.tags_all.as_ref(), &spec.name), diags).await {
                    Ok(b) => b,
                    Err(e) => {
                        // The volume exists and stays in state; the next plan shows the backup block to add.
                        diags.error_at(AttrPath::root(backup::BLOCK), format!("Error creating the backup policy of EBS volume ({volume_id})"), e);
                        Value::Null
                    }
                };
                rs.state.set(backup::BLOCK, backup);
                Some(rs)
            }
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
                partial.set(backup::BLOCK, Value::Null);
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
                match backup::read(aws, state, &v).await {
                    Ok(b) => rs.state.set(backup::BLOCK, b),
                    Err(e) => diags.error(format!("Error reading the backup policy of EBS volume ({id})"), e),
                }
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

        let prior_tags_all: Option<BTreeMap<String, String>> = decode(prior.get("tags_all")).ok();
        let policy_tags_before = policy_tags(prior_tags_all.as_ref(), prior.get("name").as_str().unwrap_or_default());
        let policy_tags_after = policy_tags(spec.tags_all.as_ref(), &spec.name);
        let backup = match backup::converge(aws, &id, prior.get(backup::BLOCK), planned.get(backup::BLOCK), &policy_tags_before, &policy_tags_after, diags).await {
            Ok(b) => b,
            Err(e) => {
                diags.error_at(AttrPath::root(backup::BLOCK), format!("Error updating the backup policy of EBS volume ({id})"), e);
                prior.get(backup::BLOCK).clone()
            }
        };

        match ec2::find_volume(aws, &id).await {
            Ok(Some(v)) => {
                let mut rs = volume_state(planned, &v, aws, diags);
                rs.state.set(backup::BLOCK, backup);
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

        if let Some(policy_id) = prior.get(backup::BLOCK).get("policy_id").as_str() {
            if let Err(e) = backup::delete(aws, &id, policy_id, diags).await {
                diags.error(format!("Error deleting the backup policy of EBS volume ({id})"), format!("{e}. The volume was not deleted."));
                return;
            }
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
                let mut rs = volume_state(&base, &v, aws, diags);
                match backup::import(aws, &v).await {
                    Ok(b) => rs.state.set(backup::BLOCK, b),
                    Err(e) => diags.error(format!("Error importing the backup policy of EBS volume ({id})"), e),
                }
                Some(rs)
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

/// The tags of the backup policy of a volume with these `tags_all` and name: the volume's, and a Name.
fn policy_tags(tags_all: Option<&BTreeMap<String, String>>, name: &str) -> BTreeMap<String, String> {
    let mut all = tags_all.cloned().unwrap_or_default();
    all.insert(tags::NAME.to_string(), format!("{name}-backup"));
    all
}

pub fn resource() -> Arc<dyn Resource> {
    Arc::new(PersistentVolume)
}
