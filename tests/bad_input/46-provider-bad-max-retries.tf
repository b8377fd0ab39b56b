# provider: max_retries = 500
# expect: max_retries && 0 to 100
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
}
