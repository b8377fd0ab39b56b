# expect: allowed_cidrs && allow_internet = true
resource "dify_alb" "a" {
  name = "dify"
  vpc_id     = data.dify_network.n.vpc_id
  subnet_ids = data.dify_network.n.public_subnet_ids
  allowed_cidrs = { everyone = ["0.0.0.0/0"] }
}
