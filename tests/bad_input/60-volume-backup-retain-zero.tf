# expect: backup.retain && 1 to 1000
resource "dify_persistent_volume" "v" {
  name              = "v"
  availability_zone = "us-east-1a"
  backup {
    schedule = "daily@03:00"
    retain   = 0
  }
}
