# expect: data_volume_ids && one volume per instance
resource "dify_ec2_stack" "s" {
  name = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  data_volume_ids = ["vol-0aaaaaaaaaaaaaaaa", "vol-0bbbbbbbbbbbbbbbb"]
}
