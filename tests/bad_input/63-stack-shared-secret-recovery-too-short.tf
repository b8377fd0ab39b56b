# expect: shared_secret_recovery_days && 7 to 30
resource "dify_ec2_stack" "s" {
  name                        = "s"
  subnet_ids                  = data.dify_network.n.private_subnet_ids
  shared_secret_recovery_days = 3
}
