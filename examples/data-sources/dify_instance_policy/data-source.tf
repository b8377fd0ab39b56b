# The policy the instance role needs, from the same inputs as the stack, before the stack's instances boot.
data "dify_instance_policy" "prd" {
  name           = "dify-prd"
  instance_count = 2
  s3_bucket      = aws_s3_bucket.files.bucket
  secret_arns    = [aws_db_instance.dify.master_user_secret[0].secret_arn]
}

resource "aws_iam_role_policy" "dify" {
  name   = "dify-prd"
  role   = aws_iam_role.dify.id
  policy = data.dify_instance_policy.prd.json
}
