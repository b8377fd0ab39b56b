# provider: assume_role {\n    role_arn = "deploy-role"\n  }
# expect: assume_role.role_arn && arn:
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
}
