# expect: subnet_ids && at least two subnets
resource "dify_alb" "a" {
  name = "dify"
  vpc_id = data.dify_network.n.vpc_id
  subnet_ids = ["subnet-0aaaaaaaaaaaaaaaa"]
}
