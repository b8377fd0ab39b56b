# expect: timeouts.create && duration
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
  timeouts {
    create = "ten minutes"
  }
}
