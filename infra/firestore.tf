resource "google_firestore_database" "main" {
  name                              = var.firestore_database
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = var.firestore_delete_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  # With protection on, `terraform destroy` leaves the database (and its users and devices) in place.
  deletion_policy = var.firestore_delete_protection ? "ABANDON" : "DELETE"

  depends_on = [google_project_service.apis]
}

locals {
  # Collection groups whose documents carry an expiry timestamp (the adapters mark them "(TTL)" in their layout
  # docstrings); Firestore's TTL policies delete them once it has passed, typically within a day.
  ttl_fields = {
    tokens         = "expiresAt" # access and refresh tokens, authorization codes
    signInAttempts = "expiresAt" # sign-in throttling windows
    requestSync    = "expiresAt" # Request Sync coalescing ledgers of users who stopped changing devices
    reportQueue    = "expireAt"  # Report State work left behind
    announced      = "expireAt"  # event ids of notifications already announced (never twice)
    followUps      = "expiresAt" # pending EXECUTE follow-ups (their tokens expire after 5 minutes)
  }
}

resource "google_firestore_field" "ttl" {
  for_each = local.ttl_fields

  database   = google_firestore_database.main.name
  collection = each.key
  field      = each.value

  ttl_config {}

  # No index: nothing queries by expiry, and an index on an ever-growing timestamp makes a write hot spot.
  index_config {}
}

# The sweep of pending commands nobody completed (functions/reporting/timeouts.py) asks every user's followUps for
# the overdue ones: a collection-group query on giveUpAt, which only this index answers. The field is removed
# once a command completes, so the index holds only the commands still pending.
resource "google_firestore_field" "pending_give_up" {
  database   = google_firestore_database.main.name
  collection = "followUps"
  field      = "giveUpAt"

  index_config {
    indexes {
      order       = "ASCENDING"
      query_scope = "COLLECTION_GROUP"
    }
  }
}

resource "google_firebaserules_ruleset" "firestore" {
  count = var.manage_firestore_rules ? 1 : 0

  source {
    files {
      name    = "firestore.rules"
      content = file("${path.module}/firestore.rules")
    }
  }

  depends_on = [google_firestore_database.main]

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_firebaserules_release" "firestore" {
  count = var.manage_firestore_rules ? 1 : 0

  name         = var.firestore_database == "(default)" ? "cloud.firestore" : "cloud.firestore/${var.firestore_database}"
  ruleset_name = "projects/${var.project_id}/rulesets/${google_firebaserules_ruleset.firestore[0].name}"
}
