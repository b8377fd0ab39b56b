"""Seeds the emulator with the seed module's dev network: a VPC, an internet gateway, two public and two private subnets."""
import sys

import boto3

ec2 = boto3.client(
    "ec2", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="demo", aws_secret_access_key="demo"
)


def tagged(kind, name):
    return [{"ResourceType": kind, "Tags": [{"Key": "Name", "Value": name}]}]


vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=tagged("vpc", "dify-dev-vpc"))["Vpc"]["VpcId"]
igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
for tier, az, octet in [("public", "a", 0), ("public", "c", 1), ("private", "a", 10), ("private", "c", 11)]:
    subnet = ec2.create_subnet(
        VpcId=vpc,
        CidrBlock=f"10.0.{octet}.0/24",
        AvailabilityZone=f"us-east-1{az}",
        TagSpecifications=tagged("subnet", f"dify-dev-{tier}-{az}"),
    )["Subnet"]["SubnetId"]
    if tier == "public":
        ec2.associate_route_table(RouteTableId=rt, SubnetId=subnet)
print(f"seeded {vpc}")
