# The Tokyo runbook's private topology: Dify in private subnets behind an internal, HTTP-only load balancer, reached
# by Lambda through a private hosted zone alias (api.dify.internal) and by CloudFront, whose origin-facing prefix
# list is let in. Nothing here is reachable from the internet except through CloudFront (see README.md).
terraform {
  required_version = ">= 1.6"

  required_providers {
    dify = {
      source = "difyops/dify"
    }
  }

  # State in S3 (uncomment and set the bucket):
  # backend "s3" {
  #   bucket       = "example-terraform-state"
  #   key          = "dify/internal/terraform.tfstate"
  #   region       = "ap-northeast-1"
  #   use_lockfile = true
  # }
}

provider "dify" {
  region = var.region

  # This folder can only ever touch its own account.
  allowed_account_ids = [var.aws_account_id]

  default_tags {
    tags = {
      Project     = "dify"
      Environment = "internal"
      ManagedBy   = "terraform"
    }
  }
}

data "dify_network" "this" {
  vpc_name             = var.vpc_name
  private_subnet_names = var.private_subnet_names
}

locals {
  name = "dify-internal"
  # The data volume lives in the zone of the first private subnet, where instance 1 runs.
  data_zone = one([for s in data.dify_network.this.subnets : s.availability_zone if s.id == data.dify_network.this.private_subnet_ids[0]])
}

resource "dify_persistent_volume" "data" {
  name              = "${local.name}-data"
  availability_zone = local.data_zone
  size_gb           = var.data_volume_size_gb
}

# Internal and HTTP only: TLS ends at CloudFront for browsers, and Lambda calls stay inside the VPC. An internal ALB
# without a certificate plans without the plain-HTTP warning an internet-facing one gets.
resource "dify_alb" "this" {
  name       = local.name
  internal   = true
  vpc_id     = data.dify_network.this.vpc_id
  subnet_ids = data.dify_network.this.private_subnet_ids

  # Lambda (in the VPC) by its security group; CloudFront by its origin-facing managed prefix list.
  allowed_security_group_ids = [var.lambda_security_group_id]
  allowed_prefix_list_ids    = [var.cloudfront_prefix_list_id]

  deletion_protection = var.deletion_protection
}

resource "dify_ec2_stack" "this" {
  name                  = local.name
  subnet_ids            = data.dify_network.this.private_subnet_ids
  instance_type         = var.instance_type
  iam_instance_profile  = var.iam_instance_profile
  alb_security_group_id = dify_alb.this.security_group_id
  target_group_arns     = [dify_alb.this.target_group_arn]
  data_volume_ids       = [dify_persistent_volume.data.id]

  dify {
    version = var.dify_version
    # The URL browsers use: CloudFront's, over HTTPS.
    url = var.public_url
  }
}

# api.dify.internal in the private hosted zone, for Lambda and anything else in the VPC.
resource "dify_dns_record" "internal" {
  zone_id = var.private_zone_id
  name    = var.internal_domain_name

  alias {
    dns_name = dify_alb.this.dns_name
    zone_id  = dify_alb.this.zone_id
  }
}

output "internal_url" {
  description = "Dify's API inside the VPC (Lambda), through the private zone."
  value       = "http://${dify_dns_record.internal.fqdn}"
}

output "alb_dns_name" {
  description = "The internal load balancer: CloudFront's origin."
  value       = dify_alb.this.dns_name
}

output "alb_security_group_id" {
  value = dify_alb.this.security_group_id
}

output "instance_ids" {
  value = dify_ec2_stack.this.instance_ids
}

output "volume_ids" {
  value = [dify_persistent_volume.data.id]
}
