//! Reading a `dify_alb` from AWS: the load balancer and everything it owns, in as few calls as possible, and the
//! Terraform state those objects describe, including the read right after a change (`read_back`, `salvage`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_ec2::types::SecurityGroup;
use aws_sdk_elasticloadbalancingv2::types::{ActionTypeEnum, Listener, LoadBalancer, LoadBalancerSchemeEnum, ProtocolEnum, TargetGroup};
use tokio_util::sync::CancellationToken;

use crate::aws::elbv2::{find_load_balancer, Lookup};
use crate::aws::wait::{wait_until, Status};
use crate::aws::{ec2, errors, tags, AwsClients, OpExt};
use crate::framework::timeouts;
use crate::framework::value::Value;
use crate::framework::{Diagnostics, ResourceState};
use crate::object;

use super::resource_state;

/// How long a read right after a change waits for AWS to show what it just made.
const READ_BACK_TIMEOUT: Duration = Duration::from_secs(120);

pub const HTTPS_PORT: i32 = 443;
pub const HTTP_PORT: i32 = 80;

/// Everything a `dify_alb` is made of, as AWS reports it.
#[derive(Debug)]
pub struct Observed {
    pub lb: LoadBalancer,
    pub lb_attributes: BTreeMap<String, String>,
    pub lb_tags: BTreeMap<String, String>,
    pub security_group: Option<SecurityGroup>,
    pub target_group: Option<TargetGroup>,
    pub target_group_attributes: BTreeMap<String, String>,
    pub target_group_tags: BTreeMap<String, String>,
    pub https: Option<Listener>,
    pub http: Option<Listener>,
    pub additional_certificates: BTreeSet<String>,
}

impl Observed {
    pub fn arn(&self) -> &str {
        self.lb.load_balancer_arn().unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.lb.load_balancer_name().unwrap_or_default()
    }
}

/// The target group a listener forwards to, if it forwards.
pub fn forward_target(l: &Listener) -> Option<String> {
    l.default_actions().iter().find(|a| a.r#type() == Some(&ActionTypeEnum::Forward)).and_then(|a| {
        a.target_group_arn()
            .map(str::to_string)
            .or_else(|| a.forward_config().and_then(|f| f.target_groups().first()).and_then(|t| t.target_group_arn()).map(str::to_string))
    })
}

/// The certificates of a listener besides its default one (the SNI certificates).
pub fn non_default(certificates: Vec<aws_sdk_elasticloadbalancingv2::types::Certificate>) -> BTreeSet<String> {
    certificates.into_iter().filter(|c| c.is_default() != Some(true)).filter_map(|c| c.certificate_arn).collect()
}

/// Reads the load balancer and its parts: 6–8 calls, the independent ones concurrently.
/// `known_target_group` is used when no listener forwards anywhere (a listener deleted outside Terraform).
pub async fn observe(aws: &AwsClients, lb: LoadBalancer, known_target_group: Option<&str>) -> Result<Observed, String> {
    let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
    let sg_ids: Vec<String> = lb.security_groups().to_vec();
    let (attributes, listeners, groups) = tokio::join!(
        aws.elbv2.describe_load_balancer_attributes().load_balancer_arn(&arn).send(),
        aws.elbv2.describe_listeners().load_balancer_arn(&arn).send(),
        async {
            if sg_ids.is_empty() {
                return Ok(vec![]);
            }
            ec2::find_security_groups(aws, sg_ids.clone()).await
        }
    );
    let lb_attributes = attributes
        .op("ELBv2 DescribeLoadBalancerAttributes", "")?
        .attributes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| Some((a.key?, a.value.unwrap_or_default())))
        .collect();
    let listeners = listeners.op("ELBv2 DescribeListeners", "")?.listeners.unwrap_or_default();
    let https = listeners.iter().find(|l| l.port() == Some(HTTPS_PORT) && l.protocol() == Some(&ProtocolEnum::Https)).cloned();
    let http = listeners.iter().find(|l| l.port() == Some(HTTP_PORT) && l.protocol() == Some(&ProtocolEnum::Http)).cloned();
    let groups = groups?;
    let owned = groups.iter().find(|g| g.tags().iter().any(|t| t.key() == Some(tags::OWNER_ALB))).or_else(|| groups.first()).cloned();

    let tg_arn = https.as_ref().and_then(forward_target).or_else(|| http.as_ref().and_then(forward_target)).or_else(|| known_target_group.map(str::to_string));
    let (target_group, target_group_attributes) = match &tg_arn {
        Some(tg) => {
            let (groups, attrs) = tokio::join!(
                aws.elbv2.describe_target_groups().target_group_arns(tg).send(),
                aws.elbv2.describe_target_group_attributes().target_group_arn(tg).send()
            );
            match errors::found(groups.op("ELBv2 DescribeTargetGroups", ""))? {
                Some(o) => {
                    let attrs = errors::found(attrs.op("ELBv2 DescribeTargetGroupAttributes", ""))?.and_then(|a| a.attributes).unwrap_or_default();
                    (o.target_groups.unwrap_or_default().into_iter().next(), attrs.into_iter().filter_map(|a| Some((a.key?, a.value.unwrap_or_default()))).collect())
                }
                None => (None, BTreeMap::new()),
            }
        }
        None => (None, BTreeMap::new()),
    };

    let mut arns = vec![arn.clone()];
    if let Some(tg) = target_group.as_ref().and_then(|t| t.target_group_arn()) {
        arns.push(tg.to_string());
    }
    let (tag_descriptions, certificates) = tokio::join!(aws.elbv2.describe_tags().set_resource_arns(Some(arns)).send(), async {
        match https.as_ref().and_then(|l| l.listener_arn()) {
            Some(l) => aws.elbv2.describe_listener_certificates().listener_arn(l).send().await.op("ELBv2 DescribeListenerCertificates", "").map(|o| o.certificates.unwrap_or_default()),
            None => Ok(vec![]),
        }
    });
    let tag_descriptions = tag_descriptions.op("ELBv2 DescribeTags", "")?.tag_descriptions.unwrap_or_default();
    let tags_of = |resource: Option<&str>| -> BTreeMap<String, String> {
        tag_descriptions
            .iter()
            .find(|d| resource.is_some() && d.resource_arn() == resource)
            .map(|d| d.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect())
            .unwrap_or_default()
    };
    let lb_tags = tags_of(Some(arn.as_str()));
    let target_group_tags = tags_of(target_group.as_ref().and_then(|t| t.target_group_arn()));
    let additional_certificates = non_default(certificates?);

    Ok(Observed { lb, lb_attributes, lb_tags, security_group: owned, target_group, target_group_attributes, target_group_tags, https, http, additional_certificates })
}

/// The sources a security group lets in on one port.
#[derive(Debug, Default, PartialEq)]
pub struct Ingress {
    /// CIDRs by rule description (the label).
    pub cidrs: BTreeMap<String, BTreeSet<String>>,
    pub groups: BTreeSet<String>,
    pub prefix_lists: BTreeSet<String>,
}

/// Ingress rules of the security group on `port`: CIDRs by label, source groups and managed prefix lists.
pub fn ingress(sg: &SecurityGroup, port: i32) -> Ingress {
    let mut found = Ingress::default();
    for p in sg.ip_permissions().iter().filter(|p| p.from_port() == Some(port) && p.to_port() == Some(port)) {
        for r in p.ip_ranges() {
            if let Some(c) = r.cidr_ip() {
                found.cidrs.entry(r.description().unwrap_or("unlabelled").to_string()).or_default().insert(c.to_string());
            }
        }
        for r in p.ipv6_ranges() {
            if let Some(c) = r.cidr_ipv6() {
                found.cidrs.entry(r.description().unwrap_or("unlabelled").to_string()).or_default().insert(c.to_string());
            }
        }
        found.groups.extend(p.user_id_group_pairs().iter().filter_map(|g| g.group_id()).map(str::to_string));
        found.prefix_lists.extend(p.prefix_list_ids().iter().filter_map(|l| l.prefix_list_id()).map(str::to_string));
    }
    found
}

fn strings<'a>(items: impl IntoIterator<Item = &'a String>) -> Value {
    Value::Set(items.into_iter().map(Value::string).collect())
}

fn num(s: Option<&String>) -> Value {
    s.and_then(|v| v.parse::<i64>().ok()).map(Value::int).unwrap_or(Value::Null)
}

fn flag(s: Option<&String>) -> Value {
    s.map(|v| Value::Bool(v == "true")).unwrap_or(Value::Null)
}

/// The state `o` describes. `base` (prior state, plan, or a bare object on import) supplies what only
/// configuration knows: `allow_internet`, `timeouts`, and the configured `tags` keys.
pub fn state(base: &Value, o: &Observed, aws: &AwsClients) -> Value {
    let dns = o.lb.dns_name().unwrap_or_default().to_string();
    let https = o.https.as_ref();
    let rule_port = if https.is_some() { HTTPS_PORT } else { HTTP_PORT };
    let Ingress { cidrs, groups, prefix_lists } = o.security_group.as_ref().map(|sg| ingress(sg, rule_port)).unwrap_or_default();
    let open = cidrs.values().flatten().any(|c| c == "0.0.0.0/0" || c == "::/0");
    let allow_internet = match base.get("allow_internet") {
        Value::Bool(b) => Value::Bool(*b || open),
        _ => Value::Bool(open),
    };
    let tg = o.target_group.as_ref();
    let health_check = match tg {
        Some(tg) => object! {
            "path" => tg.health_check_path().map(Value::string).unwrap_or(Value::Null),
            "matcher" => tg.matcher().and_then(|m| m.http_code()).map(Value::string).unwrap_or(Value::Null),
            "interval" => tg.health_check_interval_seconds().map(|n| Value::int(n as i64)).unwrap_or(Value::Null),
            "timeout" => tg.health_check_timeout_seconds().map(|n| Value::int(n as i64)).unwrap_or(Value::Null),
            "healthy_threshold" => tg.healthy_threshold_count().map(|n| Value::int(n as i64)).unwrap_or(Value::Null),
            "unhealthy_threshold" => tg.unhealthy_threshold_count().map(|n| Value::int(n as i64)).unwrap_or(Value::Null),
        },
        None => base.get("health_check").clone(),
    };
    let access_logs = match o.lb_attributes.get("access_logs.s3.enabled").map(String::as_str) {
        Some("true") => object! {
            "bucket" => o.lb_attributes.get("access_logs.s3.bucket").map(Value::string).unwrap_or(Value::Null),
            "prefix" => o.lb_attributes.get("access_logs.s3.prefix").filter(|p| !p.is_empty()).map(Value::string).unwrap_or(Value::Null),
        },
        _ => Value::Null,
    };
    let (own_tags, tags_all) = crate::resources::state_tags(base, &tags::user_visible(&o.lb_tags), aws);
    let subnets: BTreeSet<String> = o.lb.availability_zones().iter().filter_map(|z| z.subnet_id().map(str::to_string)).collect();
    object! {
        "id" => Value::string(o.arn()),
        "arn" => Value::string(o.arn()),
        "name" => Value::string(o.name()),
        "internal" => Value::Bool(o.lb.scheme() == Some(&LoadBalancerSchemeEnum::Internal)),
        "vpc_id" => o.lb.vpc_id().map(Value::string).unwrap_or(Value::Null),
        "subnet_ids" => strings(&subnets),
        "allowed_cidrs" => if cidrs.is_empty() && base.get("allowed_cidrs").is_null() { Value::Null } else { Value::Map(cidrs.iter().map(|(k, v)| (k.clone(), strings(v))).collect()) },
        "allowed_security_group_ids" => if groups.is_empty() && base.get("allowed_security_group_ids").is_null() { Value::Null } else { strings(&groups) },
        "allowed_prefix_list_ids" => if prefix_lists.is_empty() && base.get("allowed_prefix_list_ids").is_null() { Value::Null } else { strings(&prefix_lists) },
        "allow_internet" => allow_internet,
        "certificate_arn" => https.and_then(|l| l.certificates().iter().find(|c| c.is_default() != Some(false)).and_then(|c| c.certificate_arn())).map(Value::string).unwrap_or(Value::Null),
        "additional_certificate_arns" => if o.additional_certificates.is_empty() && base.get("additional_certificate_arns").is_null() { Value::Null } else { strings(&o.additional_certificates) },
        "ssl_policy" => https.and_then(|l| l.ssl_policy()).map(Value::string).unwrap_or_else(|| base.get("ssl_policy").clone()),
        "target_port" => tg.and_then(|t| t.port()).map(|p| Value::int(p as i64)).unwrap_or_else(|| base.get("target_port").clone()),
        "health_check" => health_check,
        "deregistration_delay" => num(o.target_group_attributes.get("deregistration_delay.timeout_seconds")),
        "idle_timeout" => num(o.lb_attributes.get("idle_timeout.timeout_seconds")),
        "deletion_protection" => flag(o.lb_attributes.get("deletion_protection.enabled")),
        "drop_invalid_header_fields" => flag(o.lb_attributes.get("routing.http.drop_invalid_header_fields.enabled")),
        "access_logs" => access_logs,
        "tags" => own_tags,
        "tags_all" => tags_all,
        "dns_name" => Value::string(&dns),
        "zone_id" => o.lb.canonical_hosted_zone_id().map(Value::string).unwrap_or(Value::Null),
        "url" => Value::String(format!("{}://{dns}", if https.is_some() { "https" } else { "http" })),
        "security_group_id" => o.security_group.as_ref().and_then(|g| g.group_id()).map(Value::string).unwrap_or(Value::Null),
        "target_group_arn" => tg.and_then(|t| t.target_group_arn()).map(Value::string).unwrap_or(Value::Null),
        "https_listener_arn" => https.and_then(|l| l.listener_arn()).map(Value::string).unwrap_or(Value::Null),
        "http_listener_arn" => o.http.as_ref().and_then(|l| l.listener_arn()).map(Value::string).unwrap_or(Value::Null),
        "timeouts" => base.get(timeouts::BLOCK_NAME).clone(),
    }
}

/// A read right after a change: the load balancer, the target group it should forward to (when one is expected),
/// the plan or prior state the state is built on, and what the apply was doing, for the error.
pub struct ReadBack<'a> {
    pub arn: &'a str,
    pub target_group: Option<&'a str>,
    pub base: &'a Value,
    pub what: &'a str,
}

/// Reads the converged load balancer into state. Objects made a moment ago may not be visible yet (eventual
/// consistency): the read is repeated until the load balancer and the target group it forwards to are seen.
pub async fn read_back(cancel: &CancellationToken, aws: &AwsClients, target: ReadBack<'_>, diags: &mut Diagnostics) -> Option<ResourceState> {
    let ReadBack { arn, target_group: tg, base, what } = target;
    let result = wait_until(cancel, READ_BACK_TIMEOUT, || async {
        let Some(lb) = find_load_balancer(aws, Lookup::Arn(arn)).await? else { return Ok(Status::Pending(format!("load balancer {arn} not visible yet"))) };
        let o = observe(aws, lb, tg).await?;
        Ok(if tg.is_some() && o.target_group.is_none() { Status::Pending("target group not visible yet".into()) } else { Status::Done(o) })
    })
    .await;
    match result {
        Ok(o) => Some(resource_state(state(base, &o, aws))),
        Err(e) => {
            diags.error(format!("Error {what}: reading it back"), e.to_string());
            None
        }
    }
}

/// After a failed create: if the load balancer exists, record it (tainted) so nothing is orphaned.
pub async fn salvage(cancel: &CancellationToken, aws: &AwsClients, name: &str, planned: &Value, diags: &mut Diagnostics) -> Option<ResourceState> {
    let lb = find_load_balancer(aws, Lookup::Name(name)).await.ok().flatten()?;
    let o: Observed = observe(aws, lb, None).await.ok()?;
    if o.lb_tags.get(tags::OWNER_ALB).map(String::as_str) != Some(name) {
        return None;
    }
    let mut d = Diagnostics::new();
    let state = read_back(cancel, aws, ReadBack { arn: o.arn(), target_group: None, base: planned, what: "recording the partly created ALB" }, &mut d).await;
    diags.extend(d);
    state
}
