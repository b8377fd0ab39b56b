# expect: source_image && Cannot read nowhere.img
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
  source_image = "nowhere.img"
}
