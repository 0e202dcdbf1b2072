# Paste these into the Google Home Developer Console (Cloud-to-cloud integration).

output "fulfillment_url" {
  description = "Fulfillment URL."
  value       = google_cloudfunctions2_function.fulfillment.url
}

output "authorization_url" {
  description = "Account linking: Authorization URL."
  value       = google_cloudfunctions2_function.authorize.url
}

output "token_url" {
  description = "Account linking: Token URL."
  value       = google_cloudfunctions2_function.token.url
}

output "google_client_secret_command" {
  description = "Prints the OAuth client secret to paste into the Developer Console (the value is not in the state)."
  value       = "gcloud secrets versions access latest --secret=${google_secret_manager_secret.google_client_secret.secret_id} --project=${var.project_id}"
}

output "state_topic" {
  description = "Where device clouds publish state messages."
  value       = google_pubsub_topic.state.id
}

output "commands_topic" {
  description = "Where EXECUTE publishes commands for devices with the pubsub backend."
  value       = google_pubsub_topic.commands.id
}

output "rejected_subscription" {
  description = "State messages report_state refused, with the reason in their attributes; the device cloud pulls them."
  value       = google_pubsub_subscription.rejected.id
}

output "dead_letter_subscription" {
  description = "State messages report_state could not handle; pull to inspect."
  value       = google_pubsub_subscription.dead_letter.id
}

output "function_service_accounts" {
  description = "What each function runs as (iam.tf): its Terraform key (fulfillment, authorize, token, sync_on_device_change, report_state) -> the service account's e-mail."
  value       = { for key, account in google_service_account.function : key => account.email }
}
