# expect: health_check.timeout && shorter than its interval
resource "dify_alb" "a" {
  name = "dify"
  vpc_id     = data.dify_network.n.vpc_id
  subnet_ids = data.dify_network.n.public_subnet_ids
  health_check {
    interval = 10
    timeout  = 10
  }
}
