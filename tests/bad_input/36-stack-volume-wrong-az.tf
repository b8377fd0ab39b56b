# expect: data_volume_ids && is in us-east-1c, but instance 1 goes to us-east-1a
resource "dify_persistent_volume" "c" {
  name = "c"
  availability_zone = "us-east-1c"
}
resource "dify_ec2_stack" "s" {
  name = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  data_volume_ids = ["VOLUME_IN_C"]
}
