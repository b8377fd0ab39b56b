# expect: iops && gp2
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
  type = "gp2"
  iops = 3000
}
