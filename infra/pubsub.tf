# Topics, and the subscription that delivers state messages to report_state.
#
# report_state is triggered directly by a push subscription of ours rather than by an Eventarc Pub/Sub trigger:
# Google recommends the direct trigger, and only a subscription we own can carry a dead-letter policy (Eventarc
# creates its own subscription, which Terraform cannot configure). The local stack delivers the same way.

resource "google_pubsub_topic" "state" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; device states are not worth a customer-managed key here.
  name = var.state_topic

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "commands" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; device commands are not worth a customer-managed key here.
  name = var.commands_topic

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "rejected" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption, as for the state topic whose messages it returns.
  name = var.rejected_topic

  # A week: long enough for a device cloud to notice, fix its publisher and replay.
  message_retention_duration = "604800s"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption, as for the state topic it receives from.
  name = var.dead_letter_topic

  # Long enough to notice, fix and replay.
  message_retention_duration = "604800s"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "report_state" {
  name  = "${var.state_topic}-to-report-state"
  topic = google_pubsub_topic.state.id

  # As long as report_state may run, so Pub/Sub does not redeliver a message that is still being handled.
  ack_deadline_seconds       = local.event_function_timeout_seconds
  message_retention_duration = "86400s"

  push_config {
    # The run.app URL: Pub/Sub counts as internal traffic there, so the function can refuse outside requests.
    push_endpoint = google_cloudfunctions2_function.report_state.service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.trigger.email
    }
  }

  # Retries on: a failed delivery (non-2xx) comes back with exponential backoff ...
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  # ... until it has failed max_delivery_attempts times; then it is parked on the dead-letter topic.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = "" # never expires for lack of traffic
  }

  depends_on = [google_cloud_run_service_iam_member.trigger_invokes_report_state]
}

# Dead letters wait here for inspection or replay (pull: `gcloud pubsub subscriptions pull ...`).
resource "google_pubsub_subscription" "dead_letter" {
  name                       = var.dead_letter_topic
  topic                      = google_pubsub_topic.dead_letter.id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

# Refused state messages wait here for the device cloud (pull), with the reason in their attributes.
resource "google_pubsub_subscription" "rejected" {
  name                       = var.rejected_topic
  topic                      = google_pubsub_topic.rejected.id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}
