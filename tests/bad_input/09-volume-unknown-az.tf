# expect: availability_zone && No availability zone "us-east-1q"
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1q"
}
