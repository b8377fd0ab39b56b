# expect: default_tags && "team/owner" && instance metadata
# provider: default_tags {\n    tags = { "team/owner" = "platform" }\n  }
resource "dify_ec2_stack" "s" {
  name       = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
}
