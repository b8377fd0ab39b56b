# expect: dify.version && release tag
resource "dify_ec2_stack" "s" {
  name = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  dify {
    version = "main branch"
  }
}
