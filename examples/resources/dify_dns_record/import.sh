# Import an existing alias record as ZONEID_NAME_TYPE (its AAAA twin, if any, comes with it).
terraform import dify_dns_record.dify Z0123456789ABCDEFGHIJ_dify.example.com_A

# Or, with Terraform 1.12+, an import block by identity:
#   import {
#     to       = dify_dns_record.dify
#     identity = { zone_id = "Z0123456789ABCDEFGHIJ", name = "dify.example.com", type = "A" }
#   }
