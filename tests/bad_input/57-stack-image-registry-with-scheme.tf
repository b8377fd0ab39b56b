# expect: dify.image_registry && without a scheme
resource "dify_ec2_stack" "s" {
  name       = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  dify {
    version        = "1.13.3"
    image_registry = "https://123456789012.dkr.ecr.ap-northeast-1.amazonaws.com"
  }
}
