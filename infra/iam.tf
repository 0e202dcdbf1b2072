# One identity per function, each with only what that function's code uses (tests/infra/test_iam.py checks them
# against the code):
#   fulfillment           Firestore; publishes on the state topic (full report after SYNC, virtual devices'
#                         results) and the commands topic (commands for device clouds); reads the webhook secret
#                         (signs its calls to the maker's webhook)
#   authorize             Firestore; reads the session key (signs the sign-in pages' CSRF tokens and device cookies)
#   token                 Firestore
#   sync-on-device-change Firestore (and HomeGraph, which needs no IAM role: it accepts calls from service accounts
#                         of the project that owns the integration)
#   report-state          Firestore; publishes on the rejection topic (and HomeGraph)
# and three more:
#   trigger - what Eventarc and Pub/Sub present when they invoke the private functions;
#   build   - what Cloud Build runs as when it builds the functions from source (new projects' default build
#             account has no roles; Google documents these three for a custom one).
# The Cloud Scheduler job (scheduler.tf) publishes as Cloud Scheduler's service agent and needs no grant here.

locals {
  # resource name -> (account id, what it runs)
  function_accounts = {
    fulfillment           = { id = "smart-home-fulfillment", name = "fulfillment" }
    authorize             = { id = "smart-home-authorize", name = "authorize" }
    token                 = { id = "smart-home-token", name = "token" }
    sync_on_device_change = { id = "smart-home-sync", name = "sync-on-device-change" }
    report_state          = { id = "smart-home-report-state", name = "report-state" }
  }
}

resource "google_service_account" "function" {
  for_each = local.function_accounts

  account_id   = each.value.id
  display_name = "Smart Home backend: the ${each.value.name} function"

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "trigger" {
  account_id   = "smart-home-trigger"
  display_name = "Smart Home backend: Eventarc and Pub/Sub push invoker"

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "build" {
  account_id   = "smart-home-build"
  display_name = "Smart Home backend: function builds"

  depends_on = [google_project_service.apis]
}

# The functions

resource "google_project_iam_member" "firestore" {
  for_each = local.function_accounts

  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.function[each.key].email}"

  # Only the backend's database, should the project hold others.
  condition {
    title      = "smart-home-database-only"
    expression = "resource.name == \"projects/${var.project_id}/databases/${var.firestore_database}\""
  }
}

resource "google_pubsub_topic_iam_member" "fulfillment_publishes_state" {
  topic  = google_pubsub_topic.state.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.function["fulfillment"].email}"
}

resource "google_pubsub_topic_iam_member" "fulfillment_publishes_commands" {
  topic  = google_pubsub_topic.commands.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.function["fulfillment"].email}"
}

resource "google_pubsub_topic_iam_member" "report_state_publishes_rejections" {
  topic  = google_pubsub_topic.rejected.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.function["report_state"].email}"
}

resource "google_secret_manager_secret_iam_member" "authorize_reads_session_key" {
  secret_id = google_secret_manager_secret.session_key.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function["authorize"].email}"
}

resource "google_secret_manager_secret_iam_member" "fulfillment_reads_webhook_secret" {
  secret_id = google_secret_manager_secret.webhook_secret.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function["fulfillment"].email}"
}

# Trigger

resource "google_project_iam_member" "trigger_receives_events" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.trigger.email}"
}

resource "google_cloud_run_service_iam_member" "trigger_invokes_sync_on_device_change" {
  location = var.region
  service  = google_cloudfunctions2_function.sync_on_device_change.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.trigger.email}"
}

resource "google_cloud_run_service_iam_member" "trigger_invokes_report_state" {
  location = var.region
  service  = google_cloudfunctions2_function.report_state.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.trigger.email}"
}

# Pub/Sub signs the push requests' OIDC tokens as the trigger account (projects created before April 2021 lack
# this grant by default).
resource "google_service_account_iam_member" "pubsub_signs_as_trigger" {
  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# Dead-lettering: Pub/Sub forwards undeliverable messages and acknowledges them on the source subscription.
resource "google_pubsub_topic_iam_member" "pubsub_forwards_dead_letters" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_acknowledges_dead_letters" {
  subscription = google_pubsub_subscription.report_state.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# Build

resource "google_project_iam_member" "build" {
  for_each = toset([
    "roles/logging.logWriter",       # build logs
    "roles/artifactregistry.writer", # the function images (gcf-artifacts repository)
    "roles/storage.objectViewer",    # the uploaded source, which Cloud Functions copies to its own bucket
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.build.email}"
}

# Public HTTPS functions: Google calls fulfillment, and users' browsers and Google call authorize and token. Each
# checks its own credentials (bearer tokens, sign-in, client secrets).

resource "google_cloud_run_service_iam_member" "public" {
  #checkov:skip=CKV_GCP_102:Google Home calls these endpoints without Google Cloud credentials; they authenticate requests themselves (OAuth 2.0).
  for_each = {
    fulfillment = google_cloudfunctions2_function.fulfillment.name
    authorize   = google_cloudfunctions2_function.authorize.name
    token       = google_cloudfunctions2_function.token.name
  }

  location = var.region
  service  = each.value
  role     = "roles/run.invoker"
  member   = "allUsers"
}
