# The policy the instance role needs, from the same inputs as the stack: it must exist before the stack's
# instances boot, so it cannot come from the stack's own `instance_policy_json`.
data "dify_instance_policy" "prd" {
  name           = "dify-prd"
  instance_count = 2
  s3_bucket      = "dify-prd-files-111111111111"
  secret_arns    = ["arn:aws:secretsmanager:ap-northeast-1:111111111111:secret:rds!db-0a1b2c3d-AbCdEf"]
}

# Attach it with hashicorp/aws (see the high-availability guide):
#   resource "aws_iam_role_policy" "dify" {
#     name   = "dify-prd"
#     role   = aws_iam_role.dify.id
#     policy = data.dify_instance_policy.prd.json
#   }
output "instance_policy" {
  value = data.dify_instance_policy.prd.json
}
