# Terraform 1.11 for write-only arguments: generated secrets go to Secret Manager and never into the state.
terraform {
  required_version = ">= 1.11"

  required_providers {
    # One version, the one tests/infra/test_provider_schema.py checks infra/ against (the schema of its prebuilt
    # bindings, @cdktf/provider-google 16.12.1, where terraform validate cannot run); move both together.
    google = {
      source  = "hashicorp/google"
      version = "6.50.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.7"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }
}

provider "google" {
  project        = var.project_id
  region         = var.region
  default_labels = var.labels
}
