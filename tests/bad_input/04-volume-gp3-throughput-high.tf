# expect: throughput && 125–1000
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
  throughput = 5000
}
