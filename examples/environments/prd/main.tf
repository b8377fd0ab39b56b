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

# Production runs ONE instance on purpose. The seed module drew two instances in two zones, but with Dify's bundled
# PostgreSQL, Redis, vector store and file storage that would be two separate Dify databases behind one load balancer
# (dify_ec2_stack refuses it). High availability here is:
#   - the data volume's final snapshot on destroy, and regular snapshots (AWS Backup or DLM) for restores;
#   - a standby: to move to the second zone, snapshot the volume, create a dify_persistent_volume from it
#     (snapshot_id) in that zone, and point the stack's subnet_ids and data_volume_ids at it;
#   - or real active-active: set instance_count = 2 and the `dify` block's external_database, external_redis,
#     vector_store_url and s3_storage to shared services (RDS, ElastiCache, S3, a vector database).
