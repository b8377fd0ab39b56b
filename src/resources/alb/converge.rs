//! Making AWS match a `dify_alb` spec: one idempotent pass that creates what is missing (adopting objects an
//! interrupted apply left, found by name and the `dify:alb` tag), updates what differs in place, and replaces a
//! target group create-before-destroy. Create, update and drift repair are all this pass; each part is in its own file.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::listeners::converge_listeners;
use super::load_balancer::converge_load_balancer;
use super::observe::Observed;
use super::security_group::converge_security_group;
use super::target_group::converge_target_group;
use crate::aws::{errors, tags, AwsClients, OpExt};
use crate::log;

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct HealthCheck {
    pub path: String,
    pub matcher: String,
    pub interval: i64,
    pub timeout: i64,
    pub healthy_threshold: i64,
    pub unhealthy_threshold: i64,
}

#[derive(Deserialize, Clone, Debug)]
pub struct AccessLogs {
    pub bucket: String,
    pub prefix: Option<String>,
}

/// The planned `dify_alb`, as converging needs it.
#[derive(Deserialize, Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub internal: bool,
    pub vpc_id: String,
    pub subnet_ids: BTreeSet<String>,
    pub allowed_cidrs: Option<BTreeMap<String, BTreeSet<String>>>,
    pub allowed_security_group_ids: Option<BTreeSet<String>>,
    pub allowed_prefix_list_ids: Option<BTreeSet<String>>,
    pub certificate_arn: Option<String>,
    pub additional_certificate_arns: Option<BTreeSet<String>>,
    pub ssl_policy: String,
    pub target_port: i64,
    pub health_check: HealthCheck,
    pub deregistration_delay: i64,
    pub idle_timeout: i64,
    pub deletion_protection: bool,
    pub drop_invalid_header_fields: bool,
    pub access_logs: Option<AccessLogs>,
    pub tags_all: Option<BTreeMap<String, String>>,
}

pub fn security_group_name(name: &str) -> String {
    format!("{name}-alb")
}

/// Target group names (≤ 32 characters) carry a short hash of the port, so a replacement group can exist beside the
/// old one while listeners switch over.
pub fn target_group_name(name: &str, port: i64) -> String {
    let hash = tags::client_token(&[name, &port.to_string()]);
    let prefix: String = name.chars().take(25).collect();
    format!("{}-{}", prefix.trim_end_matches('-'), &hash[5..11])
}

pub(super) fn owner_tags(spec: &Spec, name_tag: Option<String>) -> BTreeMap<String, String> {
    let mut t = spec.tags_all.clone().unwrap_or_default();
    if let Some(n) = name_tag {
        t.insert(tags::NAME.to_string(), n);
    }
    t.insert(tags::OWNER_ALB.to_string(), spec.name.clone());
    t
}

pub struct Converged {
    pub lb_arn: String,
    pub target_group_arn: String,
}

pub async fn converge(cancel: &CancellationToken, aws: &AwsClients, spec: &Spec, current: Option<&Observed>, timeout: Duration) -> Result<Converged, String> {
    let sg_id = converge_security_group(aws, spec, current).await?;
    let lb_arn = converge_load_balancer(cancel, aws, spec, current, &sg_id, timeout).await?;
    let old_tg = current.and_then(|c| c.target_group.as_ref()).and_then(|t| t.target_group_arn()).map(str::to_string);
    let tg_arn = converge_target_group(aws, spec, current).await?;
    // The listeners as observed, unless the load balancer was just made or adopted (then they are read afresh).
    let known = current.filter(|c| c.arn() == lb_arn).map(|c| (c.https.clone(), c.http.clone(), c.additional_certificates.clone()));
    converge_listeners(aws, spec, &lb_arn, &tg_arn, known).await?;
    if let Some(old) = old_tg.filter(|old| *old != tg_arn) {
        // Listeners point at the new group now; the old one can go.
        log::info("deleting the replaced target group", &[("target_group_arn", old.clone().into())]);
        errors::found(aws.elbv2.delete_target_group().target_group_arn(&old).send().await.op("ELBv2 DeleteTargetGroup", &old))?;
    }
    Ok(Converged { lb_arn, target_group_arn: tg_arn })
}
