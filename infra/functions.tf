# The five Cloud Functions (2nd gen), all from one source archive; main.py names their entry points.

locals {
  # Every setting the code reads (functions/platform/config.py and the adapters) is set here; tests/infra checks that none is
  # missing. ACCOUNT_LINKING_SESSION_KEY comes from Secret Manager, for authorize only (secret_environment_variables).
  base_environment = {
    GOOGLE_CLOUD_PROJECT         = var.project_id
    FIRESTORE_DATABASE           = var.firestore_database
    STATE_TOPIC                  = var.state_topic
    COMMANDS_TOPIC               = var.commands_topic
    REJECTED_TOPIC               = var.rejected_topic
    TOKEN_CACHE_SECONDS          = tostring(var.token_cache_seconds)
    ACCOUNT_LINKING_SERVICE_NAME = var.account_linking_service_name
    LOG_EXECUTION_ID             = "true"
    # The account-linking pages' brand and languages, and the X-Forwarded-For hop sign-in throttling trusts
    # (functions/linking/branding.py, i18n.py, throttling.py).
    ACCOUNT_LINKING_LOGO               = var.account_linking_logo
    ACCOUNT_LINKING_ACCENT_COLOR       = var.account_linking_accent_color
    ACCOUNT_LINKING_PRIVACY_URL        = var.account_linking_privacy_url
    ACCOUNT_LINKING_TERMS_URL          = var.account_linking_terms_url
    ACCOUNT_LINKING_SUPPORT_URL        = var.account_linking_support_url
    ACCOUNT_LINKING_PASSWORD_RESET_URL = var.account_linking_password_reset_url
    ACCOUNT_LINKING_DEFAULT_LANGUAGE   = var.account_linking_default_language
    ACCOUNT_LINKING_CLIENT_IP_HOP      = tostring(var.account_linking_client_ip_hop)
  }

  # The code's own defaults, stated so a deployment says what it runs with; override with var.function_settings.
  tunable_settings = yamldecode(file("${path.module}/function-settings.yaml"))

  function_environment = merge(local.base_environment, local.tunable_settings, var.function_settings)

  # Event functions coalesce and retry HomeGraph calls before failing (REQUEST_SYNC_OWNER_BUDGET_S and
  # REPORT_WAIT_BUDGET_S stay under this); Pub/Sub's ack deadline follows it.
  event_function_timeout_seconds = 300

  build_service_account = google_service_account.build.id

  source_bucket = google_storage_bucket.source.name
  source_object = google_storage_bucket_object.source.name
}

# HTTPS, public: Google's intents (SYNC, QUERY, EXECUTE, DISCONNECT).
resource "google_cloudfunctions2_function" "fulfillment" {
  #checkov:skip=CKV_GCP_124:Google Home (and users' browsers, for account linking) must reach it from the internet.
  name        = "fulfillment"
  location    = var.region
  description = "Google Home fulfillment: SYNC, QUERY, EXECUTE, DISCONNECT"

  build_config {
    runtime         = var.python_runtime
    entry_point     = "fulfillment"
    service_account = local.build_service_account
    source {
      storage_source {
        bucket = local.source_bucket
        object = local.source_object
      }
    }
  }

  service_config {
    available_memory                 = "512Mi"
    available_cpu                    = "1"
    max_instance_request_concurrency = 16
    timeout_seconds                  = 60
    min_instance_count               = var.fulfillment_min_instances
    max_instance_count               = var.max_instances
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function["fulfillment"].email
    environment_variables            = local.function_environment

    # Signs the calls to the maker's webhook (devices with the "webhook" backend; WEBHOOK_URL in the settings).
    secret_environment_variables {
      key        = "WEBHOOK_SECRET"
      project_id = var.project_id
      secret     = google_secret_manager_secret.webhook_secret.secret_id
      version    = google_secret_manager_secret_version.webhook_secret.version
    }
  }

  depends_on = [google_project_iam_member.build, google_secret_manager_secret_iam_member.fulfillment_reads_webhook_secret]
}

# HTTPS, public: account linking's Authorization URL (sign-in and consent pages).
resource "google_cloudfunctions2_function" "authorize" {
  #checkov:skip=CKV_GCP_124:Google Home (and users' browsers, for account linking) must reach it from the internet.
  name        = "authorize"
  location    = var.region
  description = "Account linking: OAuth 2.0 authorization endpoint (sign-in and consent)"

  build_config {
    runtime         = var.python_runtime
    entry_point     = "authorize"
    service_account = local.build_service_account
    source {
      storage_source {
        bucket = local.source_bucket
        object = local.source_object
      }
    }
  }

  service_config {
    available_memory               = "512Mi" # argon2 password hashing takes 64 MiB a sign-in
    timeout_seconds                = 60
    max_instance_count             = var.max_instances
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.function["authorize"].email
    environment_variables          = local.function_environment

    secret_environment_variables {
      key        = "ACCOUNT_LINKING_SESSION_KEY"
      project_id = var.project_id
      secret     = google_secret_manager_secret.session_key.secret_id
      version    = google_secret_manager_secret_version.session_key.version
    }
  }

  depends_on = [google_project_iam_member.build, google_secret_manager_secret_iam_member.authorize_reads_session_key]
}

# HTTPS, public: account linking's Token URL.
resource "google_cloudfunctions2_function" "token" {
  #checkov:skip=CKV_GCP_124:Google Home (and users' browsers, for account linking) must reach it from the internet.
  name        = "token"
  location    = var.region
  description = "Account linking: OAuth 2.0 token endpoint"

  build_config {
    runtime         = var.python_runtime
    entry_point     = "token"
    service_account = local.build_service_account
    source {
      storage_source {
        bucket = local.source_bucket
        object = local.source_object
      }
    }
  }

  service_config {
    available_memory               = "256Mi"
    timeout_seconds                = 60
    max_instance_count             = var.max_instances
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.function["token"].email
    environment_variables          = local.function_environment
    # No session key: only authorize signs the pages' cookies.
  }

  depends_on = [google_project_iam_member.build]
}

# Private, Firestore trigger: a device written (created, changed, deleted) -> Request Sync.
resource "google_cloudfunctions2_function" "sync_on_device_change" {
  name        = "sync-on-device-change"
  location    = var.region
  description = "Request Sync when a user's devices change"

  build_config {
    runtime         = var.python_runtime
    entry_point     = "sync_on_device_change"
    service_account = local.build_service_account
    source {
      storage_source {
        bucket = local.source_bucket
        object = local.source_object
      }
    }
  }

  service_config {
    available_memory               = "256Mi"
    timeout_seconds                = local.event_function_timeout_seconds
    max_instance_count             = var.max_instances
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.function["sync_on_device_change"].email
    environment_variables          = local.function_environment
  }

  event_trigger {
    # Firestore events are published in the database's location; the trigger must live there too.
    trigger_region        = var.firestore_location
    event_type            = "google.cloud.firestore.document.v1.written"
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email

    event_filters {
      attribute = "database"
      value     = google_firestore_database.main.name
    }

    event_filters {
      attribute = "document"
      value     = "users/{agentUserId}/devices/{deviceId}"
      operator  = "match-path-pattern"
    }
  }

  depends_on = [google_project_iam_member.build, google_project_iam_member.trigger_receives_events]
}

# Private, Pub/Sub (push subscription in pubsub.tf): state messages -> Report State, notifications, follow-ups.
resource "google_cloudfunctions2_function" "report_state" {
  name        = "report-state"
  location    = var.region
  description = "Report State, proactive notifications and follow-up responses from the state topic"

  build_config {
    runtime         = var.python_runtime
    entry_point     = "report_state"
    service_account = local.build_service_account
    source {
      storage_source {
        bucket = local.source_bucket
        object = local.source_object
      }
    }
  }

  service_config {
    available_memory = "512Mi"
    # Its invocations mostly wait for a flush; one instance serves many of them, and they coordinate within
    # the instance (see functions/reporting/pipeline.py). The gen2 default (1 CPU share, concurrency 1) would
    # start an instance per waiting message.
    available_cpu                    = "1"
    max_instance_request_concurrency = 80
    timeout_seconds                  = local.event_function_timeout_seconds
    max_instance_count               = var.max_instances
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function["report_state"].email
    environment_variables            = local.function_environment
  }

  depends_on = [google_project_iam_member.build]
}
