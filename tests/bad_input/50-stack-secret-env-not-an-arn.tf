# expect: dify.secret_env && not a Secrets Manager secret ARN
resource "dify_ec2_stack" "s" {
  name       = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  dify {
    version    = "1.13.3"
    secret_env = { SMTP_PASSWORD = "hunter2" }
  }
}
