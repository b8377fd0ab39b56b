# expect: idle_timeout && 1 to 4000
resource "dify_alb" "a" {
  name = "dify"
  vpc_id     = data.dify_network.n.vpc_id
  subnet_ids = data.dify_network.n.public_subnet_ids
  idle_timeout = 0
}
