# expect: dify.env && SMTP_PASSWORD looks like a secret && secret_env
resource "dify_ec2_stack" "s" {
  name       = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  dify {
    version = "1.13.3"
    env     = { SMTP_PASSWORD = "hunter2" }
  }
}
