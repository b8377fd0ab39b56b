# expect: vpc_id && vpc-
resource "dify_alb" "a" {
  name = "dify"
  vpc_id = "dify-vpc"
  subnet_ids = data.dify_network.n.public_subnet_ids
}
