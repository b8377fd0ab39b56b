# One Dify instance in a private subnet, its data on a dify_persistent_volume, behind a dify_alb.
resource "dify_ec2_stack" "app" {
  name                  = "dify-prd"
  subnet_ids            = data.dify_network.this.private_subnet_ids
  instance_type         = "t3.large"
  iam_instance_profile  = "dify-ssm" # needs AmazonSSMManagedInstanceCore for Session Manager
  alb_security_group_id = dify_alb.this.security_group_id
  target_group_arns     = [dify_alb.this.target_group_arn]
  data_volume_ids       = [dify_persistent_volume.data.id]

  dify {
    version = "1.13.3"
  }

  tags = {
    Environment = "prd"
  }
}

# Two instances in two zones are only safe with shared services: otherwise each would run its own database.
resource "dify_ec2_stack" "ha" {
  name                  = "dify-ha"
  instance_count        = 2
  subnet_ids            = data.dify_network.this.private_subnet_ids
  iam_instance_profile  = "dify-ssm"
  alb_security_group_id = dify_alb.this.security_group_id
  target_group_arns     = [dify_alb.this.target_group_arn]

  dify {
    version          = "1.13.3"
    vector_store_url = "https://vectors.internal.example.com"
    external_database {
      host                = "dify.cluster-abc.ap-northeast-1.rds.amazonaws.com"
      username            = "dify"
      database            = "dify"
      password_secret_arn = "arn:aws:secretsmanager:ap-northeast-1:111111111111:secret:dify-db"
    }
    external_redis {
      host = "dify.abc.cache.amazonaws.com"
      tls  = true
    }
    s3_storage {
      bucket = "dify-prd-files"
    }
    # Secrets for Dify's .env travel as Secrets Manager ARNs; the instances read them at boot.
    env        = { MAIL_TYPE = "smtp", SMTP_SERVER = "smtp.example.com" }
    secret_env = { SMTP_PASSWORD = "arn:aws:secretsmanager:ap-northeast-1:111111111111:secret:dify-smtp" }
  }
}

data "dify_network" "this" {
  vpc_name             = "dify-prd-vpc"
  public_subnet_names  = ["dify-prd-public-a", "dify-prd-public-c"]
  private_subnet_names = ["dify-prd-private-a", "dify-prd-private-c"]
}

resource "dify_persistent_volume" "data" {
  name              = "dify-prd-data"
  availability_zone = "ap-northeast-1a"
  size_gb           = 50
}

resource "dify_alb" "this" {
  name            = "dify-prd"
  vpc_id          = data.dify_network.this.vpc_id
  subnet_ids      = data.dify_network.this.public_subnet_ids
  certificate_arn = "arn:aws:acm:ap-northeast-1:111111111111:certificate/0a1b2c3d-1111-2222-3333-444455556666"
  allowed_cidrs   = { office = ["203.0.113.10/32"] }
}
