# expect: iops && 3000–16000
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
  iops = 100
}
