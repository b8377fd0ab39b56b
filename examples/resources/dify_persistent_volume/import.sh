# Import an existing EBS volume by its id. Its backup policy, if the provider made one (the volume is tagged
# dify:backup), is imported with it.
terraform import dify_persistent_volume.data vol-0123456789abcdef0

# Or, with Terraform 1.12+, an import block by identity:
#   import {
#     to       = dify_persistent_volume.data
#     identity = { id = "vol-0123456789abcdef0" }
#   }
