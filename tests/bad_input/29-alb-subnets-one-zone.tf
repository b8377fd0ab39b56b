# expect: subnet_ids && all in one availability zone
resource "dify_alb" "a" {
  name = "dify"
  vpc_id = data.dify_network.n.vpc_id
  subnet_ids = [data.dify_network.n.public_subnet_ids[0], data.dify_network.n.private_subnet_ids[0]]
}
