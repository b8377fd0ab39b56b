# expect: type && gp3, gp2, io2
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
  type = "sc1"
}
