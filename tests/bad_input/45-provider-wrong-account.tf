# provider: allowed_account_ids = ["111111111111"]
# expect: allowed_account_ids && Wrong AWS account
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
}
