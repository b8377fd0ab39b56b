# expect: target_port && 1 to 65535
resource "dify_alb" "a" {
  name = "dify"
  vpc_id     = data.dify_network.n.vpc_id
  subnet_ids = data.dify_network.n.public_subnet_ids
  target_port = 70000
}
