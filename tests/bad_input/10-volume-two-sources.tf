# expect: source_image && cannot be used together
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
  snapshot_id = "snap-0123"
  source_image = "disk.img"
}
