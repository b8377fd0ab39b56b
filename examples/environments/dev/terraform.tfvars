aws_account_id       = "111111111111"
vpc_name             = "dify-dev-vpc"
public_subnet_names  = ["dify-dev-public-a", "dify-dev-public-c"]
private_subnet_names = ["dify-dev-private-a", "dify-dev-private-c"]

common_office_ip_list = {
  office_tokyo = ["203.0.113.10/32"]
  office_osaka = ["198.51.100.0/24"]
}

certificate_arn     = "arn:aws:acm:ap-northeast-1:111111111111:certificate/00000000-0000-0000-0000-000000000000"
hosted_zone_id      = "Z0000000000000000000"
domain_name         = "dify-dev.example.com"
instance_type       = "t3.medium"
data_volume_size_gb = 20
deletion_protection = false
