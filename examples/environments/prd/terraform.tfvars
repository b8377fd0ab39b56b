aws_account_id       = "333333333333"
vpc_name             = "dify-prd-vpc"
public_subnet_names  = ["dify-prd-public-a", "dify-prd-public-c"]
private_subnet_names = ["dify-prd-private-a", "dify-prd-private-c"]

common_office_ip_list = {
  office_tokyo = ["203.0.113.10/32"]
  office_osaka = ["198.51.100.0/24"]
}

certificate_arn     = "arn:aws:acm:ap-northeast-1:333333333333:certificate/00000000-0000-0000-0000-000000000000"
hosted_zone_id      = "Z0000000000000000000"
domain_name         = "dify-prd.example.com"
instance_type       = "t3.large"
data_volume_size_gb = 50
deletion_protection = true

instance_count               = 2
iam_instance_profile         = "dify-prd-instance"
database_host                = "dify-prd.cluster-abcdefghijkl.ap-northeast-1.rds.amazonaws.com"
database_password_secret_arn = "arn:aws:secretsmanager:ap-northeast-1:333333333333:secret:rds!db-00000000-0000-0000-0000-000000000000-AbCdEf"
redis_host                   = "master.dify-prd.abcdef.apne1.cache.amazonaws.com"
redis_password_secret_arn    = "arn:aws:secretsmanager:ap-northeast-1:333333333333:secret:dify-prd-redis-auth-AbCdEf"
s3_bucket                    = "dify-prd-files-333333333333"
vector_store_url             = "https://weaviate.dify-prd.internal.example.com"
