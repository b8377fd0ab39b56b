# expect: name && letters, digits and hyphens
resource "dify_alb" "a" {
  name = "dify_prd"
  vpc_id     = data.dify_network.n.vpc_id
  subnet_ids = data.dify_network.n.public_subnet_ids
}
