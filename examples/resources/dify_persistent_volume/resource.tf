# Dify's data disk: encrypted gp3, 50 GiB, backed up daily, snapshotted before it is ever destroyed.
resource "dify_persistent_volume" "data" {
  name              = "dify-prd-data"
  availability_zone = "ap-northeast-1a"
  size_gb           = 50
  iops              = 3000
  throughput        = 250

  tags = {
    Environment = "prd"
  }

  # A snapshot every day at 03:00 UTC by EBS Data Lifecycle Manager; the 14 newest are kept.
  backup {
    schedule = "daily@03:00"
    retain   = 14
  }

  timeouts {
    delete = "40m" # the final snapshot of a large disk takes a while
  }
}

# Moving an existing Docker Compose install: seed a new volume from a disk image of its data.
resource "dify_persistent_volume" "migrated" {
  name              = "dify-stg-data"
  availability_zone = "ap-northeast-1a"
  size_gb           = 20
  source_image      = "dify-volumes.img" # raw ext4 image, see the guide "Move an existing Docker Compose Dify to AWS"
}
