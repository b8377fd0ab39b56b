# expect: backup.schedule && daily@HH:MM
resource "dify_persistent_volume" "v" {
  name              = "v"
  availability_zone = "us-east-1a"
  backup {
    schedule = "daily at 3am"
    retain   = 7
  }
}
