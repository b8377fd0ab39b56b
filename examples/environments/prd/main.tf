# The prd environment of Dify on AWS.
terraform {
  required_version = ">= 1.6"

  required_providers {
    dify = {
      source = "difyops/dify"
    }
  }

  # State in S3, one key per environment (uncomment and set the bucket):
  # backend "s3" {
  #   bucket       = "example-terraform-state"
  #   key          = "dify/prd/terraform.tfstate"
  #   region       = "ap-northeast-1"
  #   use_lockfile = true
  # }
}

provider "dify" {
  region = var.region

  # This folder can only ever touch the prd account.
  allowed_account_ids = [var.aws_account_id]

  default_tags {
    tags = {
      Project     = "dify"
      Environment = "prd"
      ManagedBy   = "terraform"
    }
  }
}

module "dify" {
  source = "../../modules/dify"

  env                  = "prd"
  vpc_name             = var.vpc_name
  public_subnet_names  = var.public_subnet_names
  private_subnet_names = var.private_subnet_names
  office_ip_list       = var.common_office_ip_list
  certificate_arn      = var.certificate_arn
  hosted_zone_id       = var.hosted_zone_id
  domain_name          = var.domain_name
  instance_type        = var.instance_type
  data_volume_size_gb  = var.data_volume_size_gb
  deletion_protection  = var.deletion_protection

  # Two instances, one per private subnet (two zones), booting as one Dify on shared services. The RDS database,
  # ElastiCache Redis, S3 bucket, vector store and the instance role's policy are made with hashicorp/aws in the
  # platform's own configuration (docs/guides/high-availability.md); their ids come in as variables.
  instance_count       = var.instance_count
  iam_instance_profile = var.iam_instance_profile
  shared_services = {
    database_host                = var.database_host
    database_password_secret_arn = var.database_password_secret_arn
    database_password_secret_key = "password"
    redis_host                   = var.redis_host
    redis_password_secret_arn    = var.redis_password_secret_arn
    s3_bucket                    = var.s3_bucket
    s3_region                    = var.region
    vector_store_url             = var.vector_store_url
  }
}

output "url" {
  value = module.dify.url
}

output "alb_dns_name" {
  value = module.dify.alb_dns_name
}

output "instance_ids" {
  value = module.dify.instance_ids
}

output "volume_ids" {
  value = module.dify.volume_ids
}

output "availability_zones" {
  value = module.dify.availability_zones
}

output "shared_secret_arn" {
  value = module.dify.shared_secret_arn
}

# Attach to the role of var.iam_instance_profile (aws_iam_role_policy), before the instances boot.
output "instance_policy_json" {
  value = module.dify.instance_policy_json
}

# Production runs two instances in two zones on shared services: RDS PostgreSQL (its password in the secret RDS
# manages), ElastiCache Redis, an S3 bucket for uploads and plugins, and an external vector store. Dify's own secrets
# (SECRET_KEY and the others) live in the stack's shared Secrets Manager secret, so a login made through one instance
# is valid on the other. dify_ec2_stack refuses two instances without every shared service (split brain).
