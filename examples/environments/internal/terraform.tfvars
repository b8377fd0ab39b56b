aws_account_id       = "444444444444"
vpc_name             = "dify-internal-vpc"
private_subnet_names = ["dify-internal-private-a", "dify-internal-private-c"]

lambda_security_group_id  = "sg-0123456789abcdef0"
cloudfront_prefix_list_id = "pl-58a04531"

private_zone_id      = "Z0000000000000000001"
internal_domain_name = "api.dify.internal"
public_url           = "https://dify.example.com"

instance_type       = "t3.medium"
data_volume_size_gb = 20
deletion_protection = false
