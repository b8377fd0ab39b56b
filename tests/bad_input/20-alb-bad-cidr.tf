# expect: allowed_cidrs && office
resource "dify_alb" "a" {
  name = "dify"
  vpc_id     = data.dify_network.n.vpc_id
  subnet_ids = data.dify_network.n.public_subnet_ids
  allowed_cidrs = { office = ["203.0.113.300/32"] }
}
