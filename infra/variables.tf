variable "project_id" {
  description = "The Google Cloud project that hosts the backend; the same project as the Google Home Developer Console project (HomeGraph only accepts calls from the project that owns the integration)."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Functions, the source bucket and the secrets' replicas, e.g. us-central1 or europe-west1."
  type        = string
  default     = "us-central1"
}

variable "firestore_location" {
  description = "Location of the Firestore database (a multi-region such as nam5 or eur3, or a region). The Firestore trigger must live in the same location. Cannot be changed after creation."
  type        = string
  default     = "nam5"
}

variable "firestore_database" {
  description = "Firestore database id. \"(default)\" unless the project's default database is used by something else; the functions get it as FIRESTORE_DATABASE."
  type        = string
  default     = "(default)"
}

variable "firestore_delete_protection" {
  description = "Refuse to delete the Firestore database (also on terraform destroy). Turn off only for throw-away projects."
  type        = bool
  default     = true
}

variable "manage_firestore_rules" {
  description = "Release deny-all security rules (infra/firestore.rules) for client SDKs: only the backend's service accounts, through IAM, reach the data."
  type        = bool
  default     = true
}

variable "state_topic" {
  description = "Pub/Sub topic device clouds publish state changes, notifications and command results to; delivered to report_state. The functions get it as STATE_TOPIC."
  type        = string
  default     = "device-state"
}

variable "commands_topic" {
  description = "Pub/Sub topic EXECUTE publishes commands to for devices with the \"pubsub\" backend (the maker's device cloud subscribes). The functions get it as COMMANDS_TOPIC."
  type        = string
  default     = "device-commands"
}

variable "rejected_topic" {
  description = "Pub/Sub topic report_state publishes refused state messages to (the original data with reason, messageId, agentUserId and deviceId attributes), with a pull subscription of the same name for the device cloud. The functions get it as REJECTED_TOPIC."
  type        = string
  default     = "device-state-rejected"
}

variable "dead_letter_topic" {
  description = "Pub/Sub topic that keeps state messages report_state failed to handle after max_delivery_attempts, with a pull subscription to inspect or replay them."
  type        = string
  default     = "device-state-dead-letter"
}

variable "max_delivery_attempts" {
  description = "Deliveries of one state message to report_state before it goes to the dead-letter topic (Pub/Sub allows 5 to 100)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "Pub/Sub allows 5 to 100 delivery attempts."
  }
}

variable "account_linking_service_name" {
  description = "What the sign-in and consent pages call your service (ACCOUNT_LINKING_SERVICE_NAME)."
  type        = string
  default     = "Smart Home"
}

variable "account_linking_logo" {
  description = "The sign-in and consent pages' logo (ACCOUNT_LINKING_LOGO): a file shipped with the functions' source, named by its path from the repository root (.svg, .png, .webp, .jpg or .gif, at most 256 KiB; see docs/account-linking.md), which authorize serves itself; or an https URL. Empty: the product name in text."
  type        = string
  default     = ""
}

variable "account_linking_accent_color" {
  description = "The pages' accent colour, #rrggbb, for buttons and focus rings; their text colour follows for contrast (ACCOUNT_LINKING_ACCENT_COLOR)."
  type        = string
  default     = "#1a73e8"

  validation {
    condition     = can(regex("^#[0-9a-fA-F]{6}$", var.account_linking_accent_color))
    error_message = "The accent colour reads #rrggbb."
  }
}

variable "account_linking_privacy_url" {
  description = "Your privacy policy, linked from the pages when set (https; ACCOUNT_LINKING_PRIVACY_URL)."
  type        = string
  default     = ""
}

variable "account_linking_terms_url" {
  description = "Your terms of service, linked from the pages when set (https; ACCOUNT_LINKING_TERMS_URL)."
  type        = string
  default     = ""
}

variable "account_linking_support_url" {
  description = "Where the pages send people for help when set (https or mailto:; ACCOUNT_LINKING_SUPPORT_URL)."
  type        = string
  default     = ""
}

variable "account_linking_password_reset_url" {
  description = "The sign-in page's \"Forgot your password?\" link when set (https; ACCOUNT_LINKING_PASSWORD_RESET_URL)."
  type        = string
  default     = ""
}

variable "account_linking_default_language" {
  description = "The pages' language when the browser asks for none they speak: one of their catalogues, such as en or de (ACCOUNT_LINKING_DEFAULT_LANGUAGE)."
  type        = string
  default     = "en"
}

variable "account_linking_client_ip_hop" {
  description = "Which X-Forwarded-For entry, counted from the right, sign-in throttling takes for the client's IP (ACCOUNT_LINKING_CLIENT_IP_HOP): 1 for the functions' own URLs (Cloud Run's front end appends the address it saw); 2 behind an external Application Load Balancer (which appends the client's address and its own); 0 ignores the header."
  type        = number
  default     = 1

  validation {
    condition     = var.account_linking_client_ip_hop >= 0 && floor(var.account_linking_client_ip_hop) == var.account_linking_client_ip_hop
    error_message = "A whole number, 0 or more."
  }
}

variable "token_cache_seconds" {
  description = "How long a warm fulfillment instance trusts a validated access token before reading its record again; 0 disables (TOKEN_CACHE_SECONDS)."
  type        = number
  default     = 10
}

variable "function_settings" {
  description = "Overrides of the functions' tunable settings (infra/function-settings.yaml), e.g. { HOMEGRAPH_TIMEOUT_S = \"5\" }."
  type        = map(string)
  default     = {}
}

variable "python_runtime" {
  description = "Cloud Functions runtime; the project is tested on Python 3.11."
  type        = string
  default     = "python311"
}

variable "max_instances" {
  description = "Upper bound of instances per function: caps cost and the load on Firestore and HomeGraph."
  type        = number
  default     = 20
}

variable "fulfillment_min_instances" {
  description = "Instances of fulfillment kept warm. Google gives the fulfillment a few seconds per intent; 1 removes cold starts from users' requests at the price of one idle instance."
  type        = number
  default     = 0
}

variable "session_key_version" {
  description = "Bump to generate a new ACCOUNT_LINKING_SESSION_KEY (signs the sign-in pages' cookies and CSRF tokens; sign-ins in progress must start again)."
  type        = number
  default     = 1
}

variable "google_client_secret_version" {
  description = "Bump to generate a new secret for Google's OAuth client; then run `clients add --replace` and paste the new secret into the Developer Console."
  type        = number
  default     = 1
}

variable "labels" {
  description = "Labels put on every resource that takes labels."
  type        = map(string)
  default     = { app = "smart-home-backend" }
}

variable "webhook_secret_version" {
  description = "Bump to generate a new WEBHOOK_SECRET (signs the calls to the maker's webhook); give the maker's endpoint the new value at the same time."
  type        = number
  default     = 1
}
