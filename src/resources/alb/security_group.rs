//! The security group of a `dify_alb`: found or created, tagged, and its ingress made exactly the allowed networks,
//! groups and managed prefix lists on the ports the listeners use.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, PrefixListId, UserIdGroupPair};

use super::converge::{owner_tags, security_group_name, Spec};
use super::observe::{ingress, Ingress, Observed, HTTPS_PORT, HTTP_PORT};
use crate::aws::{security_group, tags, AwsClients};

/// The ports the security group opens, the serving one first: 443 and 80 (for the redirect) with a certificate, 80
/// without.
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

    // Ingress: exactly the wanted (port, source) rules; sources are labelled CIDRs, security groups and prefix lists.
    let wanted = Sources {
        cidrs: spec.allowed_cidrs.iter().flatten().flat_map(|(label, set)| set.iter().map(move |c| (c.clone(), label.clone()))).collect(),
        groups: spec.allowed_security_group_ids.clone().unwrap_or_default(),
        prefix_lists: spec.allowed_prefix_list_ids.clone().unwrap_or_default(),
    };
    let ports = open_ports(spec);
    let mut authorize = Vec::new();
    let mut revoke = Vec::new();
    for port in [HTTPS_PORT, HTTP_PORT] {
        let have = Sources::from(ingress(&sg, port));
        let mut want = if ports.contains(&port) { wanted.clone() } else { Sources::default() };
        if port != ports[0] {
            // Prefix lists only on the port that serves, not on the redirect: AWS counts a list as its max_entries
            // rules, and CloudFront's (55) on both ports would pass the default quota of 60 rules per group.
            want.prefix_lists.clear();
        }
        if let Some(p) = permission(port, &want.minus(&have)) {
            authorize.push(p);
        }
        if let Some(p) = permission(port, &have.minus(&want)) {
            revoke.push(p);
        }
    }
    security_group::apply_ingress(aws, &id, revoke, authorize).await?;
    Ok(id)
}

/// Sources of ingress rules on one port, comparable as sets.
#[derive(Clone, Default)]
struct Sources {
    /// (CIDR, label)
    cidrs: BTreeSet<(String, String)>,
    groups: BTreeSet<String>,
    prefix_lists: BTreeSet<String>,
}

impl From<Ingress> for Sources {
    fn from(i: Ingress) -> Sources {
        Sources {
            cidrs: i.cidrs.iter().flat_map(|(label, set)| set.iter().map(move |c| (c.clone(), label.clone()))).collect(),
            groups: i.groups,
            prefix_lists: i.prefix_lists,
        }
    }
}

impl Sources {
    fn minus(&self, other: &Sources) -> Sources {
        Sources {
            cidrs: self.cidrs.difference(&other.cidrs).cloned().collect(),
            groups: self.groups.difference(&other.groups).cloned().collect(),
            prefix_lists: self.prefix_lists.difference(&other.prefix_lists).cloned().collect(),
        }
    }
}

fn permission(port: i32, sources: &Sources) -> Option<IpPermission> {
    if sources.cidrs.is_empty() && sources.groups.is_empty() && sources.prefix_lists.is_empty() {
        return None;
    }
    let mut p = IpPermission::builder().ip_protocol("tcp").from_port(port).to_port(port);
    for (cidr, label) in &sources.cidrs {
        if cidr.contains(':') {
            p = p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(cidr).description(label).build());
        } else {
            p = p.ip_ranges(IpRange::builder().cidr_ip(cidr).description(label).build());
        }
    }
    for g in &sources.groups {
        p = p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build());
    }
    for l in &sources.prefix_lists {
        p = p.prefix_list_ids(PrefixListId::builder().prefix_list_id(l).build());
    }
    Some(p.build())
}
