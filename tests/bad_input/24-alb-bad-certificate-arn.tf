# expect: certificate_arn && arn:
resource "dify_alb" "a" {
  name = "dify"
  vpc_id     = data.dify_network.n.vpc_id
  subnet_ids = data.dify_network.n.public_subnet_ids
  certificate_arn = "my-certificate"
}
