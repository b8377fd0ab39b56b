# provider: allowed_account_ids = ["1"]\n  forbidden_account_ids = ["2"]
# expect: forbidden_account_ids && cannot be used together
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
}
