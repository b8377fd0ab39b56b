# expect: throughput && iops/4
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
  iops = 3000
  throughput = 800
}
