data "archive_file" "source" {
  type        = "zip"
  output_path = "${path.module}/.build/functions-${local.source_hash}.zip"

  dynamic "source" {
    for_each = local.source_files
    content {
      filename = source.value
      content  = file("${local.repo_root}/${source.value}")
    }
  }
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Access logs of a bucket that only Cloud Build reads would log our own deployments.
  name                        = "${var.project_id}-functions-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # holds nothing but build inputs, rebuilt from the repository

  versioning {
    enabled = true
  }

  # Every deployment uploads a new object (its name carries the hash) and Terraform deletes the previous one;
  # the versions left behind are only needed to rebuild an old revision for a while.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_object" "source" {
  name   = "functions-${local.source_hash}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}
