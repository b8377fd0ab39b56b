# expect: alias && required
resource "dify_dns_record" "r" {
  zone_id = "Z1"
  name = "dify.example.com"
}
