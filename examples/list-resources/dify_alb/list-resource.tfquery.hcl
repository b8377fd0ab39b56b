# Find existing ALBs to adopt (Terraform 1.14+):
#   terraform query
#   terraform query -generate-config-out=generated.tf
list "dify_alb" "existing" {
  provider = dify

  config {
    name_prefix = "dify-"
    tags        = { Project = "dify" }
  }
}
