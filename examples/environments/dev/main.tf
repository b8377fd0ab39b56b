# The dev environment of Dify on AWS.
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
  #   key          = "dify/dev/terraform.tfstate"
  #   region       = "ap-northeast-1"
  #   use_lockfile = true
  # }
}

provider "dify" {
  region = var.region

  # This folder can only ever touch the dev account.
  allowed_account_ids = [var.aws_account_id]

  default_tags {
    tags = {
      Project     = "dify"
      Environment = "dev"
      ManagedBy   = "terraform"
    }
  }
}

module "dify" {
  source = "../../modules/dify"

  env                  = "dev"
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
