# expect: allowed_prefix_list_ids && pl-
resource "dify_alb" "a" {
  name                    = "dify"
  vpc_id                  = data.dify_network.n.vpc_id
  subnet_ids              = data.dify_network.n.public_subnet_ids
  allowed_prefix_list_ids = ["sg-0123456789abcdef0"]
}
