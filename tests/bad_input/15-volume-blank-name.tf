# expect: name && non-empty
resource "dify_persistent_volume" "v" {
  name = " "
  availability_zone = "us-east-1a"
}
