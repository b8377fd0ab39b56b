# expect: iops && io2 volumes need provisioned IOPS
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
  type = "io2"
}
