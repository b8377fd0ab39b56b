# expect: instance_count && split your data
resource "dify_ec2_stack" "s" {
  name = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  instance_count = 2
}
