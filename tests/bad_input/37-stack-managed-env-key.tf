# expect: dify.env && CONSOLE_WEB_URL
resource "dify_ec2_stack" "s" {
  name = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  dify {
    version = "1.13.3"
    env = { SECRET_KEY = "mine" }
  }
}
