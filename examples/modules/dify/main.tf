# One Dify environment on this provider: network lookup, data volume, HTTPS entry, compute, DNS name.
# The env folders (examples/environments/{dev,stg,prd}) call it with their own tfvars.
terraform {
  required_providers {
    dify = {
      source = "difyops/dify"
    }
  }
}

data "dify_network" "this" {
  vpc_name             = var.vpc_name
  public_subnet_names  = var.public_subnet_names
  private_subnet_names = var.private_subnet_names
}

locals {
  name = "dify-${var.env}"
  # The data volume lives in the zone of the first private subnet, where instance 1 runs.
  data_zone = one([for s in data.dify_network.this.subnets : s.availability_zone if s.id == data.dify_network.this.private_subnet_ids[0]])
}

resource "dify_persistent_volume" "data" {
  name              = "${local.name}-data"
  availability_zone = local.data_zone
  size_gb           = var.data_volume_size_gb
}

resource "dify_alb" "this" {
  name                = local.name
  vpc_id              = data.dify_network.this.vpc_id
  subnet_ids          = data.dify_network.this.public_subnet_ids
  certificate_arn     = var.certificate_arn
  allowed_cidrs       = var.office_ip_list
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
  }
}

resource "dify_dns_record" "this" {
  zone_id = var.hosted_zone_id
  name    = var.domain_name

  alias {
    dns_name = dify_alb.this.dns_name
    zone_id  = dify_alb.this.zone_id
  }
}
