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
  name    = "dify-${var.env}"
  subnets = data.dify_network.this.private_subnet_ids
  # Instance i runs in private subnet i mod n; its data volume lives in that subnet's zone.
  data_zones = [for i in range(var.instance_count) : one([for s in data.dify_network.this.subnets : s.availability_zone if s.id == local.subnets[i % length(local.subnets)]])]
  shared     = var.shared_services
}

resource "dify_persistent_volume" "data" {
  count             = var.instance_count
  name              = count.index == 0 ? "${local.name}-data" : "${local.name}-data-${count.index + 1}"
  availability_zone = local.data_zones[count.index]
  size_gb           = var.data_volume_size_gb
}

# Before instance_count existed the volume was a single resource.
moved {
  from = dify_persistent_volume.data
  to   = dify_persistent_volume.data[0]
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
  instance_count        = var.instance_count
  data_volume_ids       = dify_persistent_volume.data[*].id

  dify {
    version          = var.dify_version
    vector_store_url = try(local.shared.vector_store_url, null)

    dynamic "external_database" {
      for_each = local.shared == null ? [] : [local.shared]
      content {
        host                = external_database.value.database_host
        password_secret_arn = external_database.value.database_password_secret_arn
        password_secret_key = external_database.value.database_password_secret_key
      }
    }

    dynamic "external_redis" {
      for_each = local.shared == null ? [] : [local.shared]
      content {
        host                = external_redis.value.redis_host
        password_secret_arn = external_redis.value.redis_password_secret_arn
        tls                 = external_redis.value.redis_tls
      }
    }

    dynamic "s3_storage" {
      for_each = local.shared == null ? [] : [local.shared]
      content {
        bucket = s3_storage.value.s3_bucket
        region = s3_storage.value.s3_region
      }
    }
  }
}

# The policy the instance role (var.iam_instance_profile) needs, from the same inputs as the stack: attach it with
# hashicorp/aws's aws_iam_role_policy (see docs/guides/high-availability.md).
data "dify_instance_policy" "this" {
  name           = local.name
  instance_count = var.instance_count
  s3_bucket      = try(local.shared.s3_bucket, null)
  secret_arns    = local.shared == null ? [] : compact([local.shared.database_password_secret_arn, local.shared.redis_password_secret_arn])
}

resource "dify_dns_record" "this" {
  zone_id = var.hosted_zone_id
  name    = var.domain_name

  alias {
    dns_name = dify_alb.this.dns_name
    zone_id  = dify_alb.this.zone_id
  }
}
