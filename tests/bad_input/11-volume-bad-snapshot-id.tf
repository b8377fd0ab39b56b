# expect: snapshot_id && snap-
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
  snapshot_id = "ami-0123"
}
