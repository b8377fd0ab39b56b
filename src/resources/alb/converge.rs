//! Making AWS match a `dify_alb` spec: one idempotent pass that creates what is missing (adopting objects an
//! interrupted apply left, found by name and the `dify:alb` tag), updates what differs in place, and replaces a
//! target group create-before-destroy. Create, update and drift repair are all this pass.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, UserIdGroupPair};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, Listener, LoadBalancerAttribute, LoadBalancerSchemeEnum, LoadBalancerTypeEnum, Matcher, ProtocolEnum, RedirectActionConfig,
    RedirectActionStatusCodeEnum, TargetGroup, TargetGroupAttribute, TargetTypeEnum,
};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::observe::{forward_target, ingress, non_default, Observed, HTTPS_PORT, HTTP_PORT};
use crate::aws::elbv2::{self, Lookup};
use crate::aws::{ec2, errors, security_group, tags, AwsClients, OpExt};
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

fn owner_tags(spec: &Spec, name_tag: Option<String>) -> BTreeMap<String, String> {
    let mut t = spec.tags_all.clone().unwrap_or_default();
    if let Some(n) = name_tag {
        t.insert(tags::NAME.to_string(), n);
    }
    t.insert(tags::OWNER_ALB.to_string(), spec.name.clone());
    t
}

/// The ports the security group opens: 443 and 80 (for the redirect) with a certificate, 80 without.
fn open_ports(spec: &Spec) -> Vec<i32> {
    if spec.certificate_arn.is_some() {
        vec![HTTPS_PORT, HTTP_PORT]
    } else {
        vec![HTTP_PORT]
    }
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

async fn converge_security_group(aws: &AwsClients, spec: &Spec, current: Option<&Observed>) -> Result<String, String> {
    let sg_name = security_group_name(&spec.name);
    let wanted_tags = owner_tags(spec, Some(sg_name.clone()));
    let sg = match current.and_then(|c| c.security_group.clone()) {
        Some(sg) => {
            tags::sync_ec2(&aws.ec2, sg.group_id().unwrap_or_default(), &tags::from_ec2(sg.tags()), &wanted_tags).await?;
            sg
        }
        None => security_group::find_or_create(aws, &spec.vpc_id, &sg_name, &format!("Dify ALB {}: HTTPS from allowed networks", spec.name), &wanted_tags).await?,
    };
    let id = sg.group_id().unwrap_or_default().to_string();

    // Ingress: exactly the wanted (port, source, label) rules.
    let cidrs = spec.allowed_cidrs.clone().unwrap_or_default();
    let groups = spec.allowed_security_group_ids.clone().unwrap_or_default();
    let ports = open_ports(spec);
    let mut authorize = Vec::new();
    let mut revoke = Vec::new();
    for port in [HTTPS_PORT, HTTP_PORT] {
        let (have_cidrs, have_groups) = ingress(&sg, port);
        let have: BTreeSet<(String, String)> = have_cidrs.iter().flat_map(|(label, set)| set.iter().map(move |c| (c.clone(), label.clone()))).collect();
        let want: BTreeSet<(String, String)> = if ports.contains(&port) { cidrs.iter().flat_map(|(label, set)| set.iter().map(move |c| (c.clone(), label.clone()))).collect() } else { BTreeSet::new() };
        let want_groups: BTreeSet<String> = if ports.contains(&port) { groups.clone() } else { BTreeSet::new() };
        let missing: Vec<_> = want.difference(&have).cloned().collect();
        let extra: Vec<_> = have.difference(&want).cloned().collect();
        let missing_groups: Vec<_> = want_groups.difference(&have_groups).cloned().collect();
        let extra_groups: Vec<_> = have_groups.difference(&want_groups).cloned().collect();
        if let Some(p) = permission(port, &missing, &missing_groups) {
            authorize.push(p);
        }
        if let Some(p) = permission(port, &extra, &extra_groups) {
            revoke.push(p);
        }
    }
    security_group::apply_ingress(aws, &id, revoke, authorize).await?;
    Ok(id)
}

fn permission(port: i32, cidrs: &[(String, String)], groups: &[String]) -> Option<IpPermission> {
    if cidrs.is_empty() && groups.is_empty() {
        return None;
    }
    let mut p = IpPermission::builder().ip_protocol("tcp").from_port(port).to_port(port);
    for (cidr, label) in cidrs {
        if cidr.contains(':') {
            p = p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(cidr).description(label).build());
        } else {
            p = p.ip_ranges(IpRange::builder().cidr_ip(cidr).description(label).build());
        }
    }
    for g in groups {
        p = p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build());
    }
    Some(p.build())
}

async fn converge_load_balancer(cancel: &CancellationToken, aws: &AwsClients, spec: &Spec, current: Option<&Observed>, sg_id: &str, timeout: Duration) -> Result<String, String> {
    let wanted_tags = owner_tags(spec, None);
    let (lb, tags_now) = match current {
        Some(c) => (c.lb.clone(), c.lb_tags.clone()),
        None => match elbv2::find_load_balancer(aws, Lookup::Name(&spec.name)).await? {
            Some(lb) => {
                let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
                let t = elbv2::tags_of(aws, &arn).await?;
                if t.get(tags::OWNER_ALB) != Some(&spec.name) {
                    return Err(format!(
                        "a load balancer named {} already exists ({arn}) and this configuration did not create it; adopt it with `terraform import dify_alb.<name> {arn}` or choose another name",
                        spec.name
                    ));
                }
                log::info("adopting the load balancer an interrupted apply created", &[("arn", arn.into())]);
                (lb, t)
            }
            None => {
                let out = aws
                    .elbv2
                    .create_load_balancer()
                    .name(&spec.name)
                    .set_subnets(Some(spec.subnet_ids.iter().cloned().collect()))
                    .security_groups(sg_id)
                    .scheme(if spec.internal { LoadBalancerSchemeEnum::Internal } else { LoadBalancerSchemeEnum::InternetFacing })
                    .r#type(LoadBalancerTypeEnum::Application)
                    .set_tags(Some(elbv2::to_elb(&wanted_tags)))
                    .send()
                    .await
                    .op("ELBv2 CreateLoadBalancer", &spec.name)?;
                let lb = out.load_balancers.unwrap_or_default().into_iter().next().ok_or("ELBv2 CreateLoadBalancer returned no load balancer")?;
                (lb, wanted_tags.clone())
            }
        },
    };
    let arn = lb.load_balancer_arn().unwrap_or_default().to_string();

    elbv2::wait_load_balancer_active(cancel, aws, &arn, timeout).await?;

    let subnets_now: BTreeSet<String> = lb.availability_zones().iter().filter_map(|z| z.subnet_id().map(str::to_string)).collect();
    if subnets_now != spec.subnet_ids {
        aws.elbv2
            .set_subnets()
            .load_balancer_arn(&arn)
            .set_subnets(Some(spec.subnet_ids.iter().cloned().collect()))
            .send()
            .await
            .op("ELBv2 SetSubnets", &arn)?;
    }
    if !lb.security_groups().iter().any(|g| g == sg_id) {
        aws.elbv2
            .set_security_groups()
            .load_balancer_arn(&arn)
            .security_groups(sg_id)
            .send()
            .await
            .op("ELBv2 SetSecurityGroups", &arn)?;
    }

    let mut wanted_attrs = BTreeMap::from([
        ("idle_timeout.timeout_seconds".to_string(), spec.idle_timeout.to_string()),
        ("deletion_protection.enabled".to_string(), spec.deletion_protection.to_string()),
        ("routing.http.drop_invalid_header_fields.enabled".to_string(), spec.drop_invalid_header_fields.to_string()),
        ("access_logs.s3.enabled".to_string(), spec.access_logs.is_some().to_string()),
    ]);
    if let Some(logs) = &spec.access_logs {
        wanted_attrs.insert("access_logs.s3.bucket".into(), logs.bucket.clone());
        wanted_attrs.insert("access_logs.s3.prefix".into(), logs.prefix.clone().unwrap_or_default());
    }
    let attrs_now = match current {
        Some(c) => c.lb_attributes.clone(),
        None => BTreeMap::new(),
    };
    let changed: Vec<LoadBalancerAttribute> =
        wanted_attrs.iter().filter(|(k, v)| attrs_now.get(*k) != Some(*v)).map(|(k, v)| LoadBalancerAttribute::builder().key(k).value(v).build()).collect();
    if !changed.is_empty() {
        aws.elbv2
            .modify_load_balancer_attributes()
            .load_balancer_arn(&arn)
            .set_attributes(Some(changed))
            .send()
            .await
            .op("ELBv2 ModifyLoadBalancerAttributes", &arn)?;
    }
    elbv2::sync_elb_tags(aws, &arn, &tags_now, &wanted_tags).await?;
    Ok(arn)
}

fn health_check_of(tg: &TargetGroup) -> HealthCheck {
    HealthCheck {
        path: tg.health_check_path().unwrap_or_default().to_string(),
        matcher: tg.matcher().and_then(|m| m.http_code()).unwrap_or_default().to_string(),
        interval: tg.health_check_interval_seconds().unwrap_or_default() as i64,
        timeout: tg.health_check_timeout_seconds().unwrap_or_default() as i64,
        healthy_threshold: tg.healthy_threshold_count().unwrap_or_default() as i64,
        unhealthy_threshold: tg.unhealthy_threshold_count().unwrap_or_default() as i64,
    }
}

/// Keeps the current group when AWS can update it in place; otherwise finds or creates the group for the new port.
async fn converge_target_group(aws: &AwsClients, spec: &Spec, current: Option<&Observed>) -> Result<String, String> {
    let reusable = current.and_then(|c| c.target_group.clone()).filter(|tg| tg.port() == Some(spec.target_port as i32) && tg.vpc_id() == Some(spec.vpc_id.as_str()));
    let name = target_group_name(&spec.name, spec.target_port);
    let wanted_tags = owner_tags(spec, None);
    let (tg, tags_now, attrs_now) = match reusable {
        Some(tg) => (tg, current.map(|c| c.target_group_tags.clone()), current.map(|c| c.target_group_attributes.clone()).unwrap_or_default()),
        None => {
            let found = errors::found(aws.elbv2.describe_target_groups().names(&name).send().await.op("ELBv2 DescribeTargetGroups", ""))?.and_then(|o| o.target_groups.unwrap_or_default().into_iter().next());
            match found {
                Some(tg) => (tg, None, BTreeMap::new()),
                None => {
                    let hc = &spec.health_check;
                    let out = aws
                        .elbv2
                        .create_target_group()
                        .name(&name)
                        .protocol(ProtocolEnum::Http)
                        .port(spec.target_port as i32)
                        .vpc_id(&spec.vpc_id)
                        .target_type(TargetTypeEnum::Instance)
                        .health_check_enabled(true)
                        .health_check_protocol(ProtocolEnum::Http)
                        .health_check_path(&hc.path)
                        .health_check_interval_seconds(hc.interval as i32)
                        .health_check_timeout_seconds(hc.timeout as i32)
                        .healthy_threshold_count(hc.healthy_threshold as i32)
                        .unhealthy_threshold_count(hc.unhealthy_threshold as i32)
                        .matcher(Matcher::builder().http_code(&hc.matcher).build())
                        .set_tags(Some(elbv2::to_elb(&wanted_tags)))
                        .send()
                        .await
                        .op("ELBv2 CreateTargetGroup", &name)?;
                    let tg = out.target_groups.unwrap_or_default().into_iter().next().ok_or("ELBv2 CreateTargetGroup returned no target group")?;
                    (tg, Some(wanted_tags.clone()), BTreeMap::new())
                }
            }
        }
    };
    let arn = tg.target_group_arn().unwrap_or_default().to_string();
    if health_check_of(&tg) != spec.health_check {
        let hc = &spec.health_check;
        aws.elbv2
            .modify_target_group()
            .target_group_arn(&arn)
            .health_check_path(&hc.path)
            .health_check_interval_seconds(hc.interval as i32)
            .health_check_timeout_seconds(hc.timeout as i32)
            .healthy_threshold_count(hc.healthy_threshold as i32)
            .unhealthy_threshold_count(hc.unhealthy_threshold as i32)
            .matcher(Matcher::builder().http_code(&hc.matcher).build())
            .send()
            .await
            .op("ELBv2 ModifyTargetGroup", &arn)?;
    }
    let delay = spec.deregistration_delay.to_string();
    if attrs_now.get("deregistration_delay.timeout_seconds") != Some(&delay) {
        aws.elbv2
            .modify_target_group_attributes()
            .target_group_arn(&arn)
            .attributes(TargetGroupAttribute::builder().key("deregistration_delay.timeout_seconds").value(&delay).build())
            .send()
            .await
            .op("ELBv2 ModifyTargetGroupAttributes", &arn)?;
    }
    let tags_now = match tags_now {
        Some(t) => t,
        None => elbv2::tags_of(aws, &arn).await?,
    };
    elbv2::sync_elb_tags(aws, &arn, &tags_now, &wanted_tags).await?;
    Ok(arn)
}

fn forward(tg: &str) -> Action {
    Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(tg).build()
}

fn redirect_to_https() -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Redirect)
        .redirect_config(RedirectActionConfig::builder().protocol("HTTPS").port(HTTPS_PORT.to_string()).status_code(RedirectActionStatusCodeEnum::Http301).build())
        .build()
}

fn is_redirect(l: &Listener) -> bool {
    l.default_actions().iter().any(|a| a.r#type() == Some(&ActionTypeEnum::Redirect))
}

type KnownListeners = (Option<Listener>, Option<Listener>, BTreeSet<String>);

async fn converge_listeners(aws: &AwsClients, spec: &Spec, lb_arn: &str, tg_arn: &str, known: Option<KnownListeners>) -> Result<(), String> {
    let (https, http, certificates) = match known {
        Some(k) => (k.0, k.1, Some(k.2)),
        None => {
            let listeners = aws
                .elbv2
                .describe_listeners()
                .load_balancer_arn(lb_arn)
                .send()
                .await
                .op("ELBv2 DescribeListeners", "")?
                .listeners
                .unwrap_or_default();
            let find = |port: i32| listeners.iter().find(|l| l.port() == Some(port)).cloned();
            (find(HTTPS_PORT), find(HTTP_PORT), None)
        }
    };

    match &spec.certificate_arn {
        Some(cert) => {
            let https_arn = match &https {
                Some(l) => {
                    let arn = l.listener_arn().unwrap_or_default().to_string();
                    let cert_now = l.certificates().first().and_then(|c| c.certificate_arn());
                    if forward_target(l).as_deref() != Some(tg_arn) || cert_now != Some(cert.as_str()) || l.ssl_policy() != Some(spec.ssl_policy.as_str()) {
                        aws.elbv2
                            .modify_listener()
                            .listener_arn(&arn)
                            .protocol(ProtocolEnum::Https)
                            .port(HTTPS_PORT)
                            .certificates(Certificate::builder().certificate_arn(cert).build())
                            .ssl_policy(&spec.ssl_policy)
                            .default_actions(forward(tg_arn))
                            .send()
                            .await
                            .op("ELBv2 ModifyListener", &arn)?;
                    }
                    arn
                }
                None => aws
                    .elbv2
                    .create_listener()
                    .load_balancer_arn(lb_arn)
                    .protocol(ProtocolEnum::Https)
                    .port(HTTPS_PORT)
                    .certificates(Certificate::builder().certificate_arn(cert).build())
                    .ssl_policy(&spec.ssl_policy)
                    .default_actions(forward(tg_arn))
                    .set_tags(Some(elbv2::to_elb(&owner_tags(spec, None))))
                    .send()
                    .await
                    .op("ELBv2 CreateListener", "HTTPS")?
                    .listeners
                    .unwrap_or_default()
                    .into_iter()
                    .next()
                    .and_then(|l| l.listener_arn)
                    .unwrap_or_default(),
            };
            // A listener created just now has no additional certificates yet.
            let certificates = if https.is_some() { certificates } else { Some(BTreeSet::new()) };
            converge_additional_certificates(aws, &https_arn, spec, certificates).await?;
            match &http {
                Some(l) if is_redirect(l) => {}
                Some(l) => {
                    let arn = l.listener_arn().unwrap_or_default();
                    aws.elbv2.modify_listener().listener_arn(arn).default_actions(redirect_to_https()).send().await.op("ELBv2 ModifyListener", arn)?;
                }
                None => {
                    create_http_listener(aws, spec, lb_arn, redirect_to_https()).await?;
                }
            }
        }
        None => {
            if let Some(l) = &https {
                let arn = l.listener_arn().unwrap_or_default();
                aws.elbv2.delete_listener().listener_arn(arn).send().await.op("ELBv2 DeleteListener", arn)?;
            }
            match &http {
                Some(l) if forward_target(l).as_deref() == Some(tg_arn) => {}
                Some(l) => {
                    let arn = l.listener_arn().unwrap_or_default();
                    aws.elbv2.modify_listener().listener_arn(arn).default_actions(forward(tg_arn)).send().await.op("ELBv2 ModifyListener", arn)?;
                }
                None => {
                    create_http_listener(aws, spec, lb_arn, forward(tg_arn)).await?;
                }
            }
        }
    }
    Ok(())
}

async fn create_http_listener(aws: &AwsClients, spec: &Spec, lb_arn: &str, action: Action) -> Result<(), String> {
    aws.elbv2
        .create_listener()
        .load_balancer_arn(lb_arn)
        .protocol(ProtocolEnum::Http)
        .port(HTTP_PORT)
        .default_actions(action)
        .set_tags(Some(elbv2::to_elb(&owner_tags(spec, None))))
        .send()
        .await
        .op("ELBv2 CreateListener", "HTTP")?;
    Ok(())
}

async fn converge_additional_certificates(aws: &AwsClients, listener_arn: &str, spec: &Spec, known: Option<BTreeSet<String>>) -> Result<(), String> {
    let now: BTreeSet<String> = match known {
        Some(k) => k,
        None => non_default(
            aws.elbv2
                .describe_listener_certificates()
                .listener_arn(listener_arn)
                .send()
                .await
                .op("ELBv2 DescribeListenerCertificates", "")?
                .certificates
                .unwrap_or_default(),
        ),
    };
    let now: BTreeSet<String> = now.into_iter().filter(|c| Some(c) != spec.certificate_arn.as_ref()).collect();
    let wanted = spec.additional_certificate_arns.clone().unwrap_or_default();
    let add: Vec<Certificate> = wanted.difference(&now).map(|c| Certificate::builder().certificate_arn(c).build()).collect();
    let remove: Vec<Certificate> = now.difference(&wanted).map(|c| Certificate::builder().certificate_arn(c).build()).collect();
    if !add.is_empty() {
        aws.elbv2.add_listener_certificates().listener_arn(listener_arn).set_certificates(Some(add)).send().await.op("ELBv2 AddListenerCertificates", "")?;
    }
    if !remove.is_empty() {
        aws.elbv2
            .remove_listener_certificates()
            .listener_arn(listener_arn)
            .set_certificates(Some(remove))
            .send()
            .await
            .op("ELBv2 RemoveListenerCertificates", "")?;
    }
    Ok(())
}

/// Deletes listeners, the load balancer (waiting until it is gone), the target group and the security group
/// (retrying while AWS still holds its network interfaces).
pub async fn tear_down(cancel: &CancellationToken, aws: &AwsClients, o: &Observed, timeout: Duration) -> Result<(), String> {
    let arn = o.arn().to_string();
    for l in o.https.iter().chain(o.http.iter()) {
        if let Some(la) = l.listener_arn() {
            errors::found(aws.elbv2.delete_listener().listener_arn(la).send().await.op("ELBv2 DeleteListener", la))?;
        }
    }
    errors::found(aws.elbv2.delete_load_balancer().load_balancer_arn(&arn).send().await.op("ELBv2 DeleteLoadBalancer", &arn))?;
    elbv2::wait_load_balancer_deleted(cancel, aws, &arn, timeout).await?;
    let rest = Remnants {
        target_group_arn: o.target_group.as_ref().and_then(|t| t.target_group_arn()).map(str::to_string),
        // The security group belongs to the resource, whether it made it or adopted it on import.
        security_group_id: o.security_group.as_ref().and_then(|g| g.group_id()).map(str::to_string),
    };
    tear_down_remnants(cancel, aws, &rest, timeout).await?;
    Ok(())
}

/// What is left of a `dify_alb` once its load balancer is gone: the target group and security group it recorded,
/// when they still exist (a destroy interrupted between its steps, or the load balancer deleted by hand).
#[derive(Debug, Default)]
pub struct Remnants {
    pub target_group_arn: Option<String>,
    pub security_group_id: Option<String>,
}

impl Remnants {
    /// The target group and security group a `dify_alb` state recorded (whether they still exist or not).
    pub fn recorded(state: &crate::framework::value::Value) -> Remnants {
        Remnants { target_group_arn: state.get("target_group_arn").as_str().map(str::to_string), security_group_id: state.get("security_group_id").as_str().map(str::to_string) }
    }

    pub fn is_empty(&self) -> bool {
        self.target_group_arn.is_none() && self.security_group_id.is_none()
    }
}

/// Which of the recorded target group and security group still exist (one describe each, made only when the load
/// balancer is gone).
pub async fn remnants(aws: &AwsClients, recorded: &Remnants) -> Result<Remnants, String> {
    let mut found = Remnants::default();
    if let Some(tg) = &recorded.target_group_arn {
        let out = errors::found(aws.elbv2.describe_target_groups().target_group_arns(tg).send().await.op("ELBv2 DescribeTargetGroups", tg))?;
        if out.is_some_and(|o| !o.target_groups().is_empty()) {
            found.target_group_arn = Some(tg.clone());
        }
    }
    if let Some(sg) = &recorded.security_group_id {
        if ec2::find_security_group(aws, sg).await?.is_some() {
            found.security_group_id = Some(sg.clone());
        }
    }
    Ok(found)
}

/// Deletes the target group, then the security group (the last steps of a teardown); gone ones are skipped.
pub async fn tear_down_remnants(cancel: &CancellationToken, aws: &AwsClients, rest: &Remnants, timeout: Duration) -> Result<(), String> {
    if let Some(tg) = &rest.target_group_arn {
        errors::found(aws.elbv2.delete_target_group().target_group_arn(tg).send().await.op("ELBv2 DeleteTargetGroup", tg))?;
    }
    if let Some(sg) = &rest.security_group_id {
        security_group::delete(cancel, aws, sg, timeout).await?;
    }
    Ok(())
}
