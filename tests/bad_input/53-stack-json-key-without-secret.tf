# expect: dify.external_database.password_secret_key && password_secret_arn
resource "dify_ec2_stack" "s" {
  name       = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  dify {
    version = "1.13.3"
    external_database {
      host                = "db.internal"
      password_secret_key = "password"
    }
  }
}
