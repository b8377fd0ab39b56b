# expect: `tags` && "Cost Center" && instance metadata
resource "dify_ec2_stack" "s" {
  name       = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  tags       = { "Cost Center" = "ai" }
}
