# expect: allowed_cidrs && 10.0.0.0/8
resource "dify_alb" "a" {
  name = "dify"
  vpc_id     = data.dify_network.n.vpc_id
  subnet_ids = data.dify_network.n.public_subnet_ids
  allowed_cidrs = { office = ["10.1.2.3/8"] }
}
