"""Seeds the emulator like the seed runbook's account: the dev VPC (10.13.0.0/19) with public and private subnets in
ap-northeast-1a/c/d named as examples/environments/dev/terraform.tfvars expects, a hosted zone, a certificate, and a
bucket for Terraform state. Prints shell assignments for the ids the demo needs."""
import sys

import boto3

endpoint = sys.argv[1]
kw = dict(endpoint_url=endpoint, region_name="ap-northeast-1", aws_access_key_id="demo", aws_secret_access_key="demo")
ec2, acm, r53, s3 = (boto3.client(s, **kw) for s in ("ec2", "acm", "route53", "s3"))


def named(kind, name):
    return [{"ResourceType": kind, "Tags": [{"Key": "Name", "Value": name}]}]


vpc = ec2.create_vpc(CidrBlock="10.13.0.0/19", TagSpecifications=named("vpc", "dify-dev-vpc"))["Vpc"]["VpcId"]
igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
public = {}
for i, (tier, az) in enumerate([(t, z) for t in ("public", "private") for z in ("a", "c", "d")]):
    subnet = ec2.create_subnet(
        VpcId=vpc, CidrBlock=f"10.13.{i * 4}.0/22", AvailabilityZone=f"ap-northeast-1{az}",
        TagSpecifications=named("subnet", f"dify-dev-{tier}-{az}"),
    )["Subnet"]["SubnetId"]
    if tier == "public":
        ec2.associate_route_table(RouteTableId=rt, SubnetId=subnet)
        public[az] = subnet
zone = r53.create_hosted_zone(Name="example.com", CallerReference="dify-demo")["HostedZone"]["Id"].split("/")[-1]
cert = acm.request_certificate(DomainName="dify-dev.example.com")["CertificateArn"]
s3.create_bucket(Bucket="dify-demo-tfstate", CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})
print(f"VPC_ID={vpc} ZONE_ID={zone} CERT_ARN={cert} PUBLIC_A={public['a']} PUBLIC_C={public['c']}")
