# expect: name && internal-
resource "dify_alb" "a" {
  name = "internal-dify"
  vpc_id     = data.dify_network.n.vpc_id
  subnet_ids = data.dify_network.n.public_subnet_ids
}
