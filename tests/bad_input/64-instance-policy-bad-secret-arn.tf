# expect: secret_arns && arn:
data "dify_instance_policy" "p" {
  name        = "s"
  secret_arns = ["dify-db-password"]
}
