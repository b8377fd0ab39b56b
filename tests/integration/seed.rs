//! Objects the tests create in the emulator directly with the AWS SDK, as an existing account would have them.

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

pub struct SeededNetwork {
    pub vpc_id: String,
    pub vpc_cidr: String,
    /// (name, id, availability zone)
    pub public: Vec<(String, String, String)>,
    pub private: Vec<(String, String, String)>,
}

fn tags(kind: ResourceType, pairs: &[(&str, &str)]) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(kind);
    for (k, v) in pairs {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    spec.build()
}

/// A VPC named `name` like the seed module's: two public subnets routed to an internet gateway, two private ones,
/// named `{name}-{public|private}-{a|c}`.
pub async fn network(ec2: &aws_sdk_ec2::Client, name: &str, cidr_prefix: &str) -> SeededNetwork {
    network_named(ec2, name, name, cidr_prefix, crate::harness::REGION).await
}

/// The same, with the VPC's Name tag, the subnets' name prefix and the region chosen separately.
pub async fn network_named(ec2: &aws_sdk_ec2::Client, vpc_name: &str, name: &str, cidr_prefix: &str, region: &str) -> SeededNetwork {
    let vpc_cidr = format!("{cidr_prefix}.0.0/16");
    let vpc = ec2.create_vpc().cidr_block(&vpc_cidr).tag_specifications(tags(ResourceType::Vpc, &[("Name", vpc_name)])).send().await.unwrap();
    let vpc_id = vpc.vpc.unwrap().vpc_id.unwrap();
    let igw = ec2.create_internet_gateway().send().await.unwrap().internet_gateway.unwrap().internet_gateway_id.unwrap();
    ec2.attach_internet_gateway().internet_gateway_id(&igw).vpc_id(&vpc_id).send().await.unwrap();
    let rt = ec2.create_route_table().vpc_id(&vpc_id).send().await.unwrap().route_table.unwrap().route_table_id.unwrap();
    ec2.create_route().route_table_id(&rt).destination_cidr_block("0.0.0.0/0").gateway_id(&igw).send().await.unwrap();

    let mut public = Vec::new();
    let mut private = Vec::new();
    let layout = [("public", "a", 0), ("public", "c", 1), ("private", "a", 10), ("private", "c", 11)];
    for (tier, az_letter, octet) in layout {
        let subnet_name = format!("{name}-{tier}-{az_letter}");
        let az = format!("{region}{az_letter}");
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(format!("{cidr_prefix}.{octet}.0/24"))
            .availability_zone(&az)
            .tag_specifications(tags(ResourceType::Subnet, &[("Name", &subnet_name), ("tier", tier), ("app", "dify")]))
            .send()
            .await
            .unwrap();
        let id = subnet.subnet.unwrap().subnet_id.unwrap();
        if tier == "public" {
            ec2.associate_route_table().route_table_id(&rt).subnet_id(&id).send().await.unwrap();
            public.push((subnet_name, id, az));
        } else {
            private.push((subnet_name, id, az));
        }
    }
    SeededNetwork { vpc_id, vpc_cidr, public, private }
}

/// A load balancer's security group as an older HCL module made it: HTTPS and HTTP from the office, labelled.
pub async fn legacy_alb_group(ec2: &aws_sdk_ec2::Client, vpc_id: &str, name: &str) -> String {
    use aws_sdk_ec2::types::{IpPermission, IpRange};
    let sg = ec2.create_security_group().group_name(name).description("alb").vpc_id(vpc_id).send().await.unwrap().group_id.unwrap();
    for port in [443, 80] {
        ec2.authorize_security_group_ingress()
            .group_id(&sg)
            .ip_permissions(IpPermission::builder().ip_protocol("tcp").from_port(port).to_port(port).ip_ranges(IpRange::builder().cidr_ip("203.0.113.10/32").description("office").build()).build())
            .send()
            .await
            .unwrap();
    }
    sg
}
