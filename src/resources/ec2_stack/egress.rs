//! The plan-time egress check of `dify_ec2_stack`: whether the instances' subnets have a way out for what the boot
//! fetches. A subnet has one when its route table (its own, or the VPC's main one) sends 0.0.0.0/0 to a NAT
//! gateway or instance, an internet gateway or a transit gateway; otherwise the boot needs a VPC endpoint for every
//! AWS service it calls, and cannot fetch what only the internet serves. The decision (`warning`) is a pure function
//! of what AWS reports; `check` reads it in two calls.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{Route, RouteState, RouteTable, State, Subnet, VpcEndpoint, VpcEndpointType};

use crate::aws::{ec2, AwsClients};
use crate::framework::value::Value;
use crate::framework::{AttrPath, Diagnostic, Diagnostics};

/// An AWS service the boot calls, reachable without the internet through a VPC endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    /// An interface endpoint `com.amazonaws.<region>.<service>` with private DNS.
    Interface(&'static str),
    /// S3 through a gateway endpoint on the subnet's route table (or an interface endpoint with private DNS).
    S3,
}

/// What the instances fetch at boot: from the internet only, and from AWS services.
#[derive(Debug, Default)]
pub struct Needs {
    pub internet: Vec<&'static str>,
    pub endpoints: BTreeSet<Endpoint>,
}

/// What a planned stack's boot reaches.
pub fn needs(planned: &Value) -> Needs {
    let dify = planned.get("dify");
    let mut endpoints = BTreeSet::from([Endpoint::S3]); // Amazon Linux's package repositories (Docker) are in S3
    if !planned.get("iam_instance_profile").is_null() {
        endpoints.extend([Endpoint::Interface("ssm"), Endpoint::Interface("ssmmessages"), Endpoint::Interface("ec2messages")]);
    }
    let secret_arns = ["external_database", "external_redis"].iter().any(|b| !dify.get(b).get("password_secret_arn").is_null());
    if secret_arns || dify.get("secret_env").entries().is_some_and(|e| !e.is_empty()) {
        endpoints.insert(Endpoint::Interface("secretsmanager"));
    }
    // With image_registry every image (image_overrides included) comes from that registry; without it, from Docker
    // Hub, except the image_overrides that name another registry.
    let registry = dify.get("image_registry").as_str();
    let ecr = registry.is_some_and(is_ecr) || dify.get("image_overrides").entries().is_some_and(|images| images.values().filter_map(Value::as_str).any(is_ecr));
    if ecr {
        endpoints.extend([Endpoint::Interface("ecr.api"), Endpoint::Interface("ecr.dkr")]);
    }
    let mut internet = Vec::new();
    // release_url and compose_plugin_url on S3 are covered by the S3 endpoint; an https:// one may be inside the VPC
    // (a mirror), so only GitHub's own addresses count as the internet.
    match dify.get("release_url").as_str() {
        Some(url) if !from_github(url) => {}
        _ => internet.push("the Dify release from github.com"),
    }
    match dify.get("compose_plugin_url").as_str() {
        Some(url) if !from_github(url) => {}
        _ => internet.push("the Compose plugin from github.com (unless the AMI has it)"),
    }
    if registry.is_none() {
        internet.push("Dify's images from Docker Hub");
    }
    Needs { internet, endpoints }
}

fn is_ecr(image: &str) -> bool {
    image.split('/').next().is_some_and(|host| host.contains(".dkr.ecr."))
}

fn from_github(url: &str) -> bool {
    let host = url.split("://").nth(1).unwrap_or(url).split('/').next().unwrap_or("");
    host == "github.com" || host.ends_with(".github.com") || host.ends_with(".githubusercontent.com")
}

/// A route that leads out of the VPC: 0.0.0.0/0, not a blackhole, to a NAT gateway or instance, an internet, transit
/// or virtual private gateway, a firewall's (Gateway Load Balancer) endpoint, a Cloud WAN core network, or an
/// Outposts local or Wavelength carrier gateway. What lies beyond a transit or private gateway is not visible here,
/// so it counts as a way out: the check warns only when there is surely none.
fn leads_out(r: &Route) -> bool {
    r.destination_cidr_block() == Some("0.0.0.0/0")
        && r.state() != Some(&RouteState::Blackhole)
        && (r.nat_gateway_id().is_some()
            || r.instance_id().is_some()
            || r.network_interface_id().is_some()
            || r.transit_gateway_id().is_some()
            || r.core_network_arn().is_some()
            || r.local_gateway_id().is_some()
            || r.carrier_gateway_id().is_some()
            || r.gateway_id().is_some_and(|g| ["igw-", "vgw-", "vpce-"].iter().any(|p| g.starts_with(p))))
}

/// The route table `subnet_id` uses: its own association, else the VPC's main table.
fn table_of<'a>(subnet_id: &str, tables: &'a [RouteTable]) -> Option<&'a RouteTable> {
    let own = tables.iter().find(|t| t.associations().iter().any(|a| a.subnet_id() == Some(subnet_id)));
    own.or_else(|| tables.iter().find(|t| t.associations().iter().any(|a| a.main() == Some(true))))
}

fn usable(e: &VpcEndpoint) -> bool {
    !matches!(e.state(), Some(State::Deleted | State::Deleting | State::Rejected | State::Failed | State::Expired))
}

/// Whether `endpoint` is reachable from a subnet using `table`.
fn present(endpoint: Endpoint, region: &str, table: Option<&str>, endpoints: &[VpcEndpoint]) -> bool {
    let interface = |service: &str| {
        let name = format!("com.amazonaws.{region}.{service}");
        endpoints.iter().any(|e| usable(e) && e.service_name() == Some(name.as_str()) && e.vpc_endpoint_type() == Some(&VpcEndpointType::Interface) && e.private_dns_enabled() == Some(true))
    };
    match endpoint {
        Endpoint::Interface(service) => interface(service),
        Endpoint::S3 => {
            let name = format!("com.amazonaws.{region}.s3");
            let gateway = endpoints.iter().any(|e| {
                usable(e) && e.service_name() == Some(name.as_str()) && e.vpc_endpoint_type() == Some(&VpcEndpointType::Gateway) && table.is_some_and(|t| e.route_table_ids().iter().any(|id| id == t))
            });
            gateway || interface("s3")
        }
    }
}

fn describe(endpoint: Endpoint, region: &str, table: Option<&str>) -> String {
    match endpoint {
        Endpoint::Interface(service) => format!("com.amazonaws.{region}.{service} (interface, private DNS)"),
        Endpoint::S3 => format!("com.amazonaws.{region}.s3 (gateway, on {})", table.unwrap_or("the subnet's route table")),
    }
}

/// The warning (summary, detail) for `subnet_ids` given the VPC's route tables and endpoints, or `None` when each
/// subnet has a way out: a route out, or (when nothing is needed from the internet) every endpoint the boot needs.
pub fn warning(region: &str, subnet_ids: &[String], tables: &[RouteTable], endpoints: &[VpcEndpoint], needs: &Needs) -> Option<(String, String)> {
    let mut closed = Vec::new();
    let mut missing = BTreeSet::new();
    for subnet in subnet_ids {
        let table = table_of(subnet, tables);
        if table.is_some_and(|t| t.routes().iter().any(leads_out)) {
            continue;
        }
        let table_id = table.and_then(|t| t.route_table_id());
        let lacking: Vec<String> = needs.endpoints.iter().filter(|e| !present(**e, region, table_id, endpoints)).map(|e| describe(*e, region, table_id)).collect();
        if needs.internet.is_empty() && lacking.is_empty() {
            continue;
        }
        closed.push(format!("{subnet} ({})", table_id.unwrap_or("no route table")));
        missing.extend(lacking);
    }
    if closed.is_empty() {
        return None;
    }
    let summary = format!("No way out of subnet{} {}", if closed.len() > 1 { "s" } else { "" }, closed.iter().map(|c| c.split(' ').next().unwrap_or_default()).collect::<Vec<_>>().join(", "));
    let mut detail = format!("{}: no 0.0.0.0/0 route to a NAT gateway, NAT instance, internet gateway or transit gateway, so the instances cannot boot Dify.", closed.join(", "));
    if !needs.internet.is_empty() {
        detail += &format!(" The boot fetches {}, which no VPC endpoint serves: add a default route to a NAT gateway in the subnets' route table.", needs.internet.join(" and "));
    }
    if !missing.is_empty() {
        let with = if needs.internet.is_empty() { "Add a NAT route, or these VPC endpoints" } else { "Its calls to AWS would also need these VPC endpoints without the internet, missing now" };
        detail += &format!(" {with}: {}.", missing.into_iter().collect::<Vec<_>>().join(", "));
    }
    Some((summary, detail))
}

/// Warns (at `subnet_ids`) when the stack's subnets have no way out; two calls, whatever the number of subnets.
/// A failed read is a warning too: the check never stops a plan.
pub async fn check(aws: &AwsClients, subnets: &[Subnet], planned: &Value, diags: &mut Diagnostics) {
    let Some(vpc) = subnets.iter().find_map(|s| s.vpc_id()) else { return };
    let (tables, endpoints) = tokio::join!(ec2::describe_route_tables(aws, vpc), ec2::describe_vpc_endpoints(aws, vpc));
    let (tables, endpoints) = match (tables, endpoints) {
        (Ok(t), Ok(e)) => (t, e),
        (Err(e), _) | (_, Err(e)) => return diags.push(Diagnostic::warning("Could not check the subnets' way out", format!("{e}; the instances need a NAT route or VPC endpoints to boot.")).at(AttrPath::root("subnet_ids"))),
    };
    let ids: Vec<String> = subnets.iter().filter_map(|s| s.subnet_id().map(str::to_string)).collect();
    if let Some((summary, detail)) = warning(&aws.region, &ids, &tables, &endpoints, &needs(planned)) {
        diags.push(Diagnostic::warning(summary, detail).at(AttrPath::root("subnet_ids")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::RouteTableAssociation;

    const REGION: &str = "ap-northeast-1";

    fn table(id: &str, main: bool, subnets: &[&str], routes: Vec<Route>) -> RouteTable {
        let mut t = RouteTable::builder().route_table_id(id).set_routes(Some(routes));
        if main {
            t = t.associations(RouteTableAssociation::builder().main(true).build());
        }
        for s in subnets {
            t = t.associations(RouteTableAssociation::builder().main(false).subnet_id(*s).build());
        }
        t.build()
    }

    fn local() -> Route {
        Route::builder().destination_cidr_block("10.0.0.0/16").gateway_id("local").build()
    }

    fn default_to(f: impl FnOnce(aws_sdk_ec2::types::builders::RouteBuilder) -> aws_sdk_ec2::types::builders::RouteBuilder) -> Route {
        f(Route::builder().destination_cidr_block("0.0.0.0/0")).build()
    }

    fn interface(service: &str) -> VpcEndpoint {
        VpcEndpoint::builder().service_name(format!("com.amazonaws.{REGION}.{service}")).vpc_endpoint_type(VpcEndpointType::Interface).private_dns_enabled(true).state(State::Available).build()
    }

    fn s3_gateway(tables: &[&str]) -> VpcEndpoint {
        let mut e = VpcEndpoint::builder().service_name(format!("com.amazonaws.{REGION}.s3")).vpc_endpoint_type(VpcEndpointType::Gateway).state(State::Available);
        for t in tables {
            e = e.route_table_ids(*t);
        }
        e.build()
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn closed_network() -> Needs {
        Needs { internet: vec![], endpoints: BTreeSet::from([Endpoint::S3, Endpoint::Interface("ssm"), Endpoint::Interface("ecr.dkr")]) }
    }

    #[test]
    fn a_subnet_on_the_main_table_without_a_default_route_warns_naming_it_and_the_internet_sources() {
        let tables = [table("rtb-main", true, &[], vec![local()])];
        let needs = needs(&Value::Null);
        let (summary, detail) = warning(REGION, &ids(&["subnet-a"]), &tables, &[], &needs).expect("a warning");
        assert_eq!(summary, "No way out of subnet subnet-a");
        assert!(detail.contains("subnet-a (rtb-main)") && detail.contains("github.com") && detail.contains("Docker Hub"), "{detail}");
        assert!(detail.contains("com.amazonaws.ap-northeast-1.s3 (gateway, on rtb-main)"), "{detail}");
    }

    #[test]
    fn any_route_out_is_a_way_out_and_a_blackhole_or_a_peering_is_not() {
        let out: [fn(aws_sdk_ec2::types::builders::RouteBuilder) -> aws_sdk_ec2::types::builders::RouteBuilder; 6] =
            [|r| r.nat_gateway_id("nat-1"), |r| r.gateway_id("igw-1"), |r| r.instance_id("i-1").network_interface_id("eni-1"), |r| r.transit_gateway_id("tgw-1"), |r| r.gateway_id("vgw-1"), |r| r.gateway_id("vpce-1")];
        for f in out {
            let tables = [table("rtb-main", true, &[], vec![local()]), table("rtb-private", false, &["subnet-a"], vec![local(), default_to(f)])];
            assert_eq!(warning(REGION, &ids(&["subnet-a"]), &tables, &[], &needs(&Value::Null)), None, "{:?}", tables[1].routes());
        }
        let not_out: [fn(aws_sdk_ec2::types::builders::RouteBuilder) -> aws_sdk_ec2::types::builders::RouteBuilder; 2] =
            [|r| r.nat_gateway_id("nat-1").state(RouteState::Blackhole), |r| r.vpc_peering_connection_id("pcx-1")];
        for f in not_out {
            let tables = [table("rtb-private", false, &["subnet-a"], vec![local(), default_to(f)])];
            assert!(warning(REGION, &ids(&["subnet-a"]), &tables, &[], &needs(&Value::Null)).is_some());
        }
    }

    #[test]
    fn the_subnets_own_table_wins_over_the_main_one_and_only_closed_subnets_are_named() {
        let tables = [table("rtb-main", true, &[], vec![local(), default_to(|r| r.gateway_id("igw-1"))]), table("rtb-private", false, &["subnet-c"], vec![local()])];
        let (summary, detail) = warning(REGION, &ids(&["subnet-a", "subnet-c"]), &tables, &[], &needs(&Value::Null)).expect("subnet-c is closed");
        assert_eq!(summary, "No way out of subnet subnet-c");
        assert!(!detail.contains("subnet-a"), "{detail}");
    }

    #[test]
    fn with_nothing_from_the_internet_the_needed_endpoints_are_enough_and_missing_ones_are_named() {
        let tables = [table("rtb-private", false, &["subnet-a", "subnet-c"], vec![local()])];
        let all = [interface("ssm"), interface("ecr.dkr"), s3_gateway(&["rtb-private"])];
        assert_eq!(warning(REGION, &ids(&["subnet-a", "subnet-c"]), &tables, &all, &closed_network()), None);

        // S3 on another table, ssm without private DNS: both named; ecr.dkr is there.
        let mut ssm = interface("ssm");
        ssm.private_dns_enabled = Some(false);
        let some = [ssm, interface("ecr.dkr"), s3_gateway(&["rtb-public"])];
        let (summary, detail) = warning(REGION, &ids(&["subnet-a", "subnet-c"]), &tables, &some, &closed_network()).expect("a warning");
        assert_eq!(summary, "No way out of subnets subnet-a, subnet-c");
        assert!(detail.contains("com.amazonaws.ap-northeast-1.s3 (gateway, on rtb-private)") && detail.contains("com.amazonaws.ap-northeast-1.ssm (interface, private DNS)"), "{detail}");
        assert!(!detail.contains("ecr.dkr") && !detail.contains("Docker Hub"), "{detail}");
    }

    #[test]
    fn needs_follow_the_configuration() {
        let bare = needs(&Value::Null);
        assert_eq!(bare.endpoints, BTreeSet::from([Endpoint::S3]));
        assert!(!bare.internet.is_empty(), "the release and the images come from the internet");
        let planned = crate::object! {
            "iam_instance_profile" => Value::string("dify-ssm"),
            "dify" => crate::object! {
                "external_database" => crate::object! { "password_secret_arn" => Value::string("arn:aws:secretsmanager:ap-northeast-1:1:secret:db") },
                "image_overrides" => Value::Map([("api".to_string(), Value::string("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/dify-api:1.13.3"))].into()),
            },
        };
        let n = needs(&planned);
        for e in [Endpoint::S3, Endpoint::Interface("ssm"), Endpoint::Interface("ssmmessages"), Endpoint::Interface("ec2messages"), Endpoint::Interface("secretsmanager"), Endpoint::Interface("ecr.api"), Endpoint::Interface("ecr.dkr")] {
            assert!(n.endpoints.contains(&e), "{e:?} in {:?}", n.endpoints);
        }
        assert!(n.internet.iter().any(|i| i.contains("Docker Hub")), "images other than the api's still come from Docker Hub: {:?}", n.internet);

        // The closed network of docs/guides/closed-network.md: release, plugin and images from S3 and ECR.
        let closed = crate::object! {
            "dify" => crate::object! {
                "image_registry" => Value::string("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/dify-mirror"),
                "release_url" => Value::string("s3://dify-artifacts/dify-1.13.3-docker.tar.gz"),
                "compose_plugin_url" => Value::string("s3://dify-artifacts/docker-compose-linux-x86_64"),
            },
        };
        let n = needs(&closed);
        assert!(n.internet.is_empty(), "nothing from the internet: {:?}", n.internet);
        assert!(n.endpoints.contains(&Endpoint::Interface("ecr.dkr")) && n.endpoints.contains(&Endpoint::S3), "{:?}", n.endpoints);

        // A release tarball still on GitHub is still the internet.
        let github = crate::object! { "dify" => crate::object! { "release_url" => Value::string("https://github.com/langgenius/dify/archive/refs/tags/1.13.3.tar.gz") } };
        assert!(needs(&github).internet.iter().any(|i| i.contains("release")));
    }
}
