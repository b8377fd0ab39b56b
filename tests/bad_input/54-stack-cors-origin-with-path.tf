# expect: dify.cors_allow_origins && no path
resource "dify_ec2_stack" "s" {
  name       = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  dify {
    version            = "1.13.3"
    cors_allow_origins = ["https://main.d1abc.amplifyapp.com/"]
  }
}
