//! Validating and planning a `dify_persistent_volume`: performance rules per volume type, the no-shrink rule, the
//! availability zone check, hashing `source_image` (a changed file plans a replacement), and the backup block's
//! computed values.

use std::time::UNIX_EPOCH;

use serde_json::json;

use crate::aws::snapshot_upload::size_gib;
use crate::aws::{AwsClients, OpExt};
use crate::framework::resource::PlanRequest;
use crate::framework::value::Value;
use crate::framework::{AttrPath, Diagnostic, Diagnostics};
use crate::log;
use crate::resources::{image_hash, planned_tags_all};

const GP3_IOPS: (i64, i64) = (3000, 16000);
const GP3_THROUGHPUT: (i64, i64) = (125, 1000);
const GP3_DEFAULT_IOPS: i64 = 3000;
const IO2_IOPS: (i64, i64) = (100, 256000);
/// Private-state key caching the image's hash by size and modification time, so plans do not re-read an unchanged image.
const IMAGE_HASH_CACHE: &str = "source_image_hash";

fn err_at(path: &str, summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
    Diagnostic::error(summary, detail).at(AttrPath::root(path))
}

/// Checks that need only the configuration: performance settings per volume type, and a KMS key only with encryption.
pub(super) fn validate(config: &Value, diags: &mut Diagnostics) {
    validate_performance(config, diags);
    if config.get("encrypted").as_bool() == Some(false) && !config.get("kms_key_id").is_null() {
        diags.error_at(AttrPath::root("kms_key_id"), "`kms_key_id` needs encryption", "remove `kms_key_id` or set `encrypted = true`.");
    }
}

/// The plan: `tags_all`, IOPS and throughput AWS decides, the no-shrink rule, the zone check, the source image and
/// the backup policy's id and role.
pub(super) async fn modify(aws: Option<&AwsClients>, plan: &mut PlanRequest<'_>, diags: &mut Diagnostics) {
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
    super::backup::plan(aws, prior, config, &mut plan.planned);
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
            match tokio::task::spawn_blocking(move || image_hash::sha256(&p, &meta)).await {
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
