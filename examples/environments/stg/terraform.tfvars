aws_account_id       = "222222222222"
vpc_name             = "dify-stg-vpc"
public_subnet_names  = ["dify-stg-public-a", "dify-stg-public-c"]
private_subnet_names = ["dify-stg-private-a", "dify-stg-private-c"]

common_office_ip_list = {
  office_tokyo = ["203.0.113.10/32"]
  office_osaka = ["198.51.100.0/24"]
}

certificate_arn     = "arn:aws:acm:ap-northeast-1:222222222222:certificate/00000000-0000-0000-0000-000000000000"
hosted_zone_id      = "Z0000000000000000000"
domain_name         = "dify-stg.example.com"
instance_type       = "t3.medium"
data_volume_size_gb = 20
deletion_protection = false
