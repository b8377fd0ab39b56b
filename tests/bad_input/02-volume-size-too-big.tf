# expect: size_gb && 1 to 16384
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
  size_gb = 20000
}
