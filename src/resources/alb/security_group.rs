//! The security group of a `dify_alb`: found or created, tagged, and its ingress made exactly the allowed networks
//! and groups on the ports the listeners use.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, UserIdGroupPair};

use super::converge::{owner_tags, security_group_name, Spec};
use super::observe::{ingress, Observed, HTTPS_PORT, HTTP_PORT};
use crate::aws::{security_group, tags, AwsClients};

/// The ports the security group opens: 443 and 80 (for the redirect) with a certificate, 80 without.
fn open_ports(spec: &Spec) -> Vec<i32> {
    if spec.certificate_arn.is_some() {
        vec![HTTPS_PORT, HTTP_PORT]
    } else {
        vec![HTTP_PORT]
    }
}

pub(super) async fn converge_security_group(aws: &AwsClients, spec: &Spec, current: Option<&Observed>) -> Result<String, String> {
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
