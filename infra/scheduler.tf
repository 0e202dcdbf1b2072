# Once a minute, pending commands nobody completed are given up (PENDING_TIMEOUT_S; functions/reporting/timeouts.py).
# Cloud Scheduler publishes the sweep's message (attribute kind=pending-timeouts) on the state topic, and report_state
# takes it as it takes every message there: the sweep needs no function of its own.
#
# Identity: a Pub/Sub target takes no service account of ours. Cloud Scheduler publishes as its service agent,
# service-PROJECT_NUMBER@gcp-sa-cloudscheduler.iam.gserviceaccount.com, which holds the Cloud Scheduler Service Agent
# role (roles/cloudscheduler.serviceAgent) on the project; Google's IAM reference for Cloud Scheduler
# (cloud.google.com/iam/docs/roles-permissions/cloudscheduler) lists pubsub.topics.publish in that role and notes
# that whoever may create jobs can therefore publish to any topic of the project. So nothing is granted here or in
# deploy.sh: a roles/pubsub.publisher on the topic would add nothing the agent lacks. Leave the agent its role
# (Google's Cloud Scheduler docs warn against revoking it): without it the sweep's message is never published.
resource "google_cloud_scheduler_job" "pending_timeouts" {
  name        = "pending-timeouts"
  region      = var.region
  description = "Gives up pending commands that no device cloud completed in time (report_state)"
  schedule    = "* * * * *"
  time_zone   = "Etc/UTC"

  pubsub_target {
    topic_name = google_pubsub_topic.state.id
    data       = base64encode("{}")
    attributes = {
      kind = "pending-timeouts"
    }
  }

  depends_on = [google_project_service.apis]
}
