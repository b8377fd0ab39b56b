# dify.example.com → the load balancer, answered only while it is healthy.
resource "dify_dns_record" "dify" {
  zone_id = "Z0123456789ABCDEFGHIJ"
  name    = "dify.example.com"

  alias {
    dns_name = dify_alb.this.dns_name
    zone_id  = dify_alb.this.zone_id
  }
}

resource "dify_alb" "this" {
  name            = "dify-prd"
  vpc_id          = "vpc-0123456789abcdef0"
  subnet_ids      = ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0cccccccccccccccc"]
  certificate_arn = "arn:aws:acm:ap-northeast-1:111111111111:certificate/0a1b2c3d-1111-2222-3333-444455556666"
  allowed_cidrs   = { office = ["203.0.113.10/32"] }
}

output "url" {
  value = "https://${dify_dns_record.dify.fqdn}"
}
