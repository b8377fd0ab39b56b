# The HTTPS entry to Dify, open only to the office networks.
resource "dify_alb" "this" {
  name            = "dify-prd"
  vpc_id          = data.dify_network.this.vpc_id
  subnet_ids      = data.dify_network.this.public_subnet_ids
  certificate_arn = "arn:aws:acm:ap-northeast-1:111111111111:certificate/0a1b2c3d-1111-2222-3333-444455556666"

  # Shaped like the seed module's common_office_ip_list: label => CIDRs.
  allowed_cidrs = {
    office_tokyo = ["203.0.113.10/32"]
    office_osaka = ["198.51.100.0/24"]
    vpn          = ["192.0.2.0/24"]
  }

  # Behind CloudFront, let its origin-facing managed prefix list in; find the id in your region with
  #   aws ec2 describe-managed-prefix-lists --filters Name=prefix-list-name,Values=com.amazonaws.global.cloudfront.origin-facing
  # allowed_prefix_list_ids = ["pl-58a04531"]

  deletion_protection = true # production: destroy needs an explicit apply with false first

  # The defaults already suit Dify; shown here for reference.
  health_check {
    path    = "/console/api/ping"
    matcher = "200"
  }

  tags = {
    Environment = "prd"
  }
}

data "dify_network" "this" {
  vpc_name            = "dify-prd-vpc"
  public_subnet_names = ["dify-prd-public-a", "dify-prd-public-c"]
}

output "url" {
  value = dify_alb.this.url
}
