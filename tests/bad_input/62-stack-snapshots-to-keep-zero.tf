# expect: snapshots_to_keep && 1 to 100
resource "dify_ec2_stack" "s" {
  name              = "s"
  subnet_ids        = data.dify_network.n.private_subnet_ids
  snapshots_to_keep = 0
}
