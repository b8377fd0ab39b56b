# Adopt an existing ALB (made by hand or by an older HCL module) by its ARN or its name.
# Its listeners, the target group they forward to, and its security group are discovered.
terraform import dify_alb.this arn:aws:elasticloadbalancing:ap-northeast-1:111111111111:loadbalancer/app/dify-prd/0123456789abcdef
terraform import dify_alb.this dify-prd

# Or, with Terraform 1.12+, an import block by identity:
#   import {
#     to       = dify_alb.this
#     identity = { arn = "arn:aws:elasticloadbalancing:ap-northeast-1:111111111111:loadbalancer/app/dify-prd/0123456789abcdef" }
#   }
