terraform {
  required_providers {
    dify = {
      source = "difyops/dify"
    }
  }
}

# Every argument is optional: region and credentials come from the AWS SDK's
# standard environment (AWS_REGION, AWS_PROFILE, SSO, instance roles...).
provider "dify" {
  region = "ap-northeast-1"

  # The safety net of env folders: a dev folder can never touch the prd account.
  allowed_account_ids = ["111111111111"]

  default_tags {
    tags = {
      Project     = "dify"
      Environment = "dev"
      ManagedBy   = "terraform"
    }
  }
}
