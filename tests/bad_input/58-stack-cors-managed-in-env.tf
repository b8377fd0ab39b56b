# expect: dify.env && cors_allow_origins
resource "dify_ec2_stack" "s" {
  name       = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  dify {
    version = "1.13.3"
    env     = { WEB_API_CORS_ALLOW_ORIGINS = "https://app.example.com" }
  }
}
