# expect: name && 1–32
resource "dify_alb" "a" {
  name = "a-load-balancer-name-that-is-too-long"
  vpc_id     = data.dify_network.n.vpc_id
  subnet_ids = data.dify_network.n.public_subnet_ids
}
