//! Data source `dify_network`: a VPC by name or id, and its public and private subnets by name or tags.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, RouteTable, Subnet, Vpc};
use serde::{Deserialize, Serialize};

use crate::aws::{errors, AwsClients};
use crate::framework::decode::{decode, encode};
use crate::framework::schema::{Attribute, Block, Schema};
use crate::framework::validate;
use crate::framework::value::{Type, Value};
use crate::framework::{AttrPath, Ctx, DataSource, Diagnostic, Diagnostics};

pub struct Network;

#[derive(Deserialize)]
struct Config {
    vpc_name: Option<String>,
    vpc_id: Option<String>,
    public_subnet_names: Option<Vec<String>>,
    private_subnet_names: Option<Vec<String>>,
    subnet_tags: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Clone)]
struct SubnetOut {
    id: String,
    name: String,
    availability_zone: String,
    cidr_block: String,
    public: bool,
}

#[derive(Serialize)]
struct State {
    id: String,
    vpc_name: Option<String>,
    vpc_id: String,
    vpc_cidr: String,
    public_subnet_names: Option<Vec<String>>,
    private_subnet_names: Option<Vec<String>>,
    subnet_tags: Option<BTreeMap<String, String>>,
    public_subnet_ids: Vec<String>,
    private_subnet_ids: Vec<String>,
    subnets: Vec<SubnetOut>,
}

fn subnet_object_type() -> Type {
    Type::Object(BTreeMap::from([
        ("id".to_string(), Type::String),
        ("name".to_string(), Type::String),
        ("availability_zone".to_string(), Type::String),
        ("cidr_block".to_string(), Type::String),
        ("public".to_string(), Type::Bool),
    ]))
}

fn name_tag(tags: Option<&[aws_sdk_ec2::types::Tag]>) -> String {
    tags.unwrap_or_default().iter().find(|t| t.key() == Some("Name")).and_then(|t| t.value()).unwrap_or_default().to_string()
}

fn filter(name: &str, values: impl IntoIterator<Item = String>) -> Filter {
    Filter::builder().name(name).set_values(Some(values.into_iter().collect())).build()
}

/// Whether a subnet routes 0.0.0.0/0 to an internet gateway, through its own route table or the VPC's main one.
fn is_public(subnet_id: &str, tables: &[RouteTable]) -> bool {
    let associated = tables.iter().find(|t| t.associations().iter().any(|a| a.subnet_id() == Some(subnet_id)));
    let main = || tables.iter().find(|t| t.associations().iter().any(|a| a.main() == Some(true)));
    associated.or_else(main).is_some_and(|t| {
        t.routes().iter().any(|r| r.destination_cidr_block() == Some("0.0.0.0/0") && r.gateway_id().is_some_and(|g| g.starts_with("igw-")))
    })
}

async fn find_vpc(aws: &AwsClients, cfg: &Config) -> Result<Vpc, Diagnostic> {
    let (req, path, what) = match (&cfg.vpc_id, &cfg.vpc_name) {
        (Some(id), _) => (aws.ec2.describe_vpcs().vpc_ids(id), "vpc_id", format!("VPC with id {id}")),
        (None, Some(name)) => (aws.ec2.describe_vpcs().filters(filter("tag:Name", [name.clone()])), "vpc_name", format!("VPC named {name:?}")),
        (None, None) => unreachable!("validated: one of vpc_name or vpc_id is set"),
    };
    let vpcs = match req.send().await {
        Ok(out) => out.vpcs.unwrap_or_default(),
        Err(e) if errors::is_not_found(&e) => vec![],
        Err(e) => return Err(Diagnostic::error(format!("Reading {what}"), format!("EC2 DescribeVpcs: {}", errors::describe(&e))).at(AttrPath::root(path))),
    };
    match vpcs.len() {
        1 => Ok(vpcs.into_iter().next().expect("one VPC")),
        0 => Err(Diagnostic::error(
            format!("No {what} in {}", aws.region),
            format!("no {what} in region {}; check `{path}` (a VPC's Name tag or id), the region and the account.", aws.region),
        )
        .at(AttrPath::root(path))),
        n => {
            let ids: Vec<&str> = vpcs.iter().filter_map(|v| v.vpc_id()).collect();
            Err(Diagnostic::error(
                format!("{n} VPCs are named {:?}", cfg.vpc_name.clone().unwrap_or_default()),
                format!("the name is ambiguous ({}); set `vpc_id` to pick one.", ids.join(", ")),
            )
            .at(AttrPath::root(path)))
        }
    }
}

/// Picks the subnets called `names`, in that order, from the VPC's subnets; names not there are reported, and when
/// one exists in another VPC the error says so.
async fn pick_by_name<'a>(aws: &AwsClients, vpc_id: &str, subnets: &'a [Subnet], names: &[String], attr: &str, diags: &mut Diagnostics) -> Vec<&'a Subnet> {
    let mut picked = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let matches: Vec<&Subnet> = subnets.iter().filter(|s| name_tag(s.tags.as_deref()) == *name).collect();
        let path = AttrPath::root(attr).index(i);
        match matches.len() {
            1 => picked.push(matches[0]),
            0 => {
                let elsewhere = aws.ec2.describe_subnets().filters(filter("tag:Name", [name.clone()])).send().await.ok().and_then(|o| o.subnets).unwrap_or_default();
                let detail = match elsewhere.first() {
                    Some(s) => format!(
                        "subnet {name:?} ({}) is not in VPC {vpc_id}: it is in {}. Use the VPC it belongs to, or a subnet of this VPC.",
                        s.subnet_id().unwrap_or_default(),
                        s.vpc_id().unwrap_or_default()
                    ),
                    None => format!("no subnet named {name:?} in VPC {vpc_id}; check the Name tags of its subnets."),
                };
                diags.error_at(path, format!("Subnet {name:?} not found"), detail);
            }
            n => diags.error_at(
                path,
                format!("{n} subnets are named {name:?}"),
                format!("the name is ambiguous in VPC {vpc_id} ({}); give the subnets distinct Name tags or select them with `subnet_tags`.", matches.iter().filter_map(|s| s.subnet_id()).collect::<Vec<_>>().join(", ")),
            ),
        }
    }
    picked
}

#[async_trait]
impl DataSource for Network {
    fn type_name(&self) -> &'static str {
        "dify_network"
    }

    fn schema(&self) -> Schema {
        let names = |n: &str, d: &str| Attribute::new(n, Type::list(Type::String)).optional().description(d).validate(validate::each(validate::not_blank()));
        Schema::new(
            Block::new()
                .description("Looks up the VPC and subnets a Dify deployment goes into: the VPC by its Name tag or id, subnets by Name tags or by tags.")
                .attr(Attribute::string("id").computed().description("The VPC id."))
                .attr(Attribute::string("vpc_name").optional().description("Name tag of the VPC. Set this or `vpc_id`.").validate(validate::not_blank()))
                .attr(Attribute::string("vpc_id").optional().computed().description("Id of the VPC. Set this or `vpc_name`; computed when looked up by name.").validate(validate::prefixed("vpc-")))
                .attr(names("public_subnet_names", "Name tags of the public subnets (for the load balancer), in order."))
                .attr(names("private_subnet_names", "Name tags of the private subnets (for instances), in order."))
                .attr(
                    Attribute::new("subnet_tags", Type::map(Type::String))
                        .optional()
                        .description("Select the VPC's subnets carrying all these tags, instead of naming them. Public/private is decided by each subnet's route to an internet gateway."),
                )
                .attr(Attribute::string("vpc_cidr").computed().description("The VPC's primary IPv4 CIDR block."))
                .attr(Attribute::new("public_subnet_ids", Type::list(Type::String)).computed().description("Ids of the public subnets, in the order named (or by availability zone when selected by tags)."))
                .attr(Attribute::new("private_subnet_ids", Type::list(Type::String)).computed().description("Ids of the private subnets, in the order named (or by availability zone when selected by tags)."))
                .attr(Attribute::new("subnets", Type::list(subnet_object_type())).computed().description("Every selected subnet: `id`, `name`, `availability_zone`, `cidr_block`, and `public` (routes to an internet gateway)."))
                .check(validate::exactly_one_of(&["vpc_name", "vpc_id"]))
                .check(validate::conflicting(&["subnet_tags", "public_subnet_names"]))
                .check(validate::conflicting(&["subnet_tags", "private_subnet_names"])),
        )
    }

    async fn read(&self, ctx: &Ctx, config: &Value, diags: &mut Diagnostics) -> Option<Value> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let cfg: Config = decode(config).map_err(|d| diags.push(d)).ok()?;
        let vpc = find_vpc(aws, &cfg).await.map_err(|d| diags.push(d)).ok()?;
        let vpc_id = vpc.vpc_id().unwrap_or_default().to_string();

        let vpc_filter = || filter("vpc-id", [vpc_id.clone()]);
        let (subnets, tables) = tokio::join!(
            aws.ec2.describe_subnets().filters(vpc_filter()).send(),
            aws.ec2.describe_route_tables().filters(vpc_filter()).send()
        );
        let subnets = match subnets {
            Ok(o) => o.subnets.unwrap_or_default(),
            Err(e) => {
                diags.error(format!("Reading subnets of VPC {vpc_id}"), format!("EC2 DescribeSubnets: {}", errors::describe(&e)));
                return None;
            }
        };
        let tables = match tables {
            Ok(o) => o.route_tables.unwrap_or_default(),
            Err(e) => {
                diags.error(format!("Reading route tables of VPC {vpc_id}"), format!("EC2 DescribeRouteTables: {}", errors::describe(&e)));
                return None;
            }
        };

        let describe = |s: &Subnet| SubnetOut {
            id: s.subnet_id().unwrap_or_default().to_string(),
            name: name_tag(s.tags.as_deref()),
            availability_zone: s.availability_zone().unwrap_or_default().to_string(),
            cidr_block: s.cidr_block().unwrap_or_default().to_string(),
            public: is_public(s.subnet_id().unwrap_or_default(), &tables),
        };

        let (public, private): (Vec<SubnetOut>, Vec<SubnetOut>) = if cfg.public_subnet_names.is_some() || cfg.private_subnet_names.is_some() {
            let public = pick_by_name(aws, &vpc_id, &subnets, cfg.public_subnet_names.as_deref().unwrap_or_default(), "public_subnet_names", diags).await;
            let private = pick_by_name(aws, &vpc_id, &subnets, cfg.private_subnet_names.as_deref().unwrap_or_default(), "private_subnet_names", diags).await;
            (public.into_iter().map(describe).collect(), private.into_iter().map(describe).collect())
        } else {
            let wanted = cfg.subnet_tags.clone().unwrap_or_default();
            let mut chosen: Vec<SubnetOut> = subnets
                .iter()
                .filter(|s| {
                    wanted.iter().all(|(k, v)| s.tags().iter().any(|t| t.key() == Some(k.as_str()) && t.value() == Some(v.as_str())))
                })
                .map(describe)
                .collect();
            chosen.sort_by(|a, b| (&a.availability_zone, &a.name, &a.id).cmp(&(&b.availability_zone, &b.name, &b.id)));
            if chosen.is_empty() && !wanted.is_empty() {
                diags.error_at(
                    AttrPath::root("subnet_tags"),
                    format!("No subnet of VPC {vpc_id} has these tags"),
                    "check the tag keys and values; every tag listed must match.",
                );
            }
            chosen.into_iter().partition(|s| s.public)
        };
        if diags.has_errors() {
            return None;
        }
        for s in &private {
            if s.public {
                diags.warning_at(
                    AttrPath::root("private_subnet_names"),
                    format!("Subnet {:?} routes to an internet gateway", s.name),
                    format!("{} is listed as private but has a 0.0.0.0/0 route to an internet gateway; Dify instances belong in subnets without one.", s.id),
                );
            }
        }

        let mut seen = HashSet::new();
        let all: Vec<SubnetOut> = public.iter().chain(private.iter()).filter(|s| seen.insert(s.id.clone())).cloned().collect();
        let state = State {
            id: vpc_id.clone(),
            vpc_name: cfg.vpc_name.clone(),
            vpc_id: vpc_id.clone(),
            vpc_cidr: vpc.cidr_block().unwrap_or_default().to_string(),
            public_subnet_names: cfg.public_subnet_names.clone(),
            private_subnet_names: cfg.private_subnet_names.clone(),
            subnet_tags: cfg.subnet_tags.clone(),
            public_subnet_ids: public.iter().map(|s| s.id.clone()).collect(),
            private_subnet_ids: private.iter().map(|s| s.id.clone()).collect(),
            subnets: all,
        };
        encode(&state, &self.schema().ty()).map_err(|d| diags.push(d)).ok()
    }
}
