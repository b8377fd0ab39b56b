# A stack this provider made: by its name (objects are found by the tag dify:stack = name).
terraform import dify_ec2_stack.app dify-prd

# Instances an older HCL module made: by their ids, in index order. Their security group, launch template,
# attached data volumes (/dev/sdf) and target group registrations are discovered.
terraform import dify_ec2_stack.app i-0123456789abcdef0,i-0fedcba9876543210

# Or, with Terraform 1.12+, an import block by identity:
#   import {
#     to       = dify_ec2_stack.app
#     identity = { name = "dify-prd" }
#   }
