"""Makes an ALB outside Terraform, the way an older HCL module would have, for the demo's adoption step."""
import sys

import boto3

endpoint, vpc, subnet_a, subnet_c, cert = sys.argv[1:6]
kw = dict(endpoint_url=endpoint, region_name="ap-northeast-1", aws_access_key_id="demo", aws_secret_access_key="demo")
ec2, elb = boto3.client("ec2", **kw), boto3.client("elbv2", **kw)
sg = ec2.create_security_group(GroupName="legacy-dify-alb", Description="legacy", VpcId=vpc)["GroupId"]
for port in (443, 80):
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
        "IpRanges": [{"CidrIp": "203.0.113.10/32", "Description": "office_tokyo"}]}])
lb = elb.create_load_balancer(Name="legacy-dify", Subnets=[subnet_a, subnet_c], SecurityGroups=[sg])["LoadBalancers"][0]["LoadBalancerArn"]
tg = elb.create_target_group(Name="legacy-dify-tg", Protocol="HTTP", Port=80, VpcId=vpc, HealthCheckPath="/console/api/ping",
                             HealthCheckIntervalSeconds=15, HealthyThresholdCount=2, UnhealthyThresholdCount=3)["TargetGroups"][0]["TargetGroupArn"]
elb.modify_target_group_attributes(TargetGroupArn=tg, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}])
elb.modify_load_balancer_attributes(LoadBalancerArn=lb, Attributes=[
    {"Key": "idle_timeout.timeout_seconds", "Value": "600"},
    {"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"}])
elb.create_listener(LoadBalancerArn=lb, Protocol="HTTPS", Port=443, Certificates=[{"CertificateArn": cert}],
                    SslPolicy="ELBSecurityPolicy-TLS13-1-2-2021-06", DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=[{"Type": "redirect", "RedirectConfig": {
    "Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}])
print(lb)
