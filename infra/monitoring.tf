# Home Vitals in Cloud Monitoring: Google's gates for a cloud-to-cloud integration, measured from our own logs
# (developers.home.google.com/tools/quality-monitoring-dashboard), so an operator sees them before Google does.
#
# The contract: the structured log lines these metrics read. Each is one JSON object on stdout (Cloud Logging's
# jsonPayload), its `message` naming it; the fields are top-level keys. Renaming any of them breaks the metrics.
#
#   "fulfillment answer"          one per answer (fulfillment function)
#       intent        SYNC | QUERY | EXECUTE | DISCONNECT
#       requestId     Google's requestId
#       userHash      a hash of the agentUserId (never the id itself)
#       latencyMs     from the request arriving to the answer going out
#       httpStatus    the HTTP status of the answer
#       devices       list of {"id", "type", "traits", "status", "errorCode"}
#       atMs          when it was logged (epoch ms), for logs without timestamps of their own (local files)
#   "fulfillment device result"   one per device of a QUERY or EXECUTE answer (fulfillment function); the metrics read
#                                 these, as a log-based metric cannot iterate the list above
#       intent        the answer's intent; QUERY and EXECUTE are the ones counted
#       requestId     Google's requestId (as on its "fulfillment answer" line)
#       userHash      as on its "fulfillment answer" line
#       deviceId      the device
#       deviceType    action.devices.types.* ("unknown" for a device that was not found or could not be read)
#       status        SUCCESS | PENDING | OFFLINE | EXCEPTIONS | ERROR
#       errorCode     Google's error or exception code, when there is one
#       latencyMs     the answer's latency (as on its "fulfillment answer" line)
#       exempt        true when errorCode is one of Google's exempted user-caused codes or a non-blocking exception
#       statesHash    QUERY with states: a hash of the states answered (functions/core/vitals.py states_hash)
#       atMs          when it was logged (epoch ms)
#   "homegraph call"              one per request to HomeGraph, each retry too (any function)
#       method        reportStateAndNotification | requestSync | ...
#       status        the HTTP status of the answer (absent, or not 2xx, when the call failed)
#       latencyMs     the call's duration
#       attempt       1 for the first request of a call, 2 for its first retry, ...
#       atMs          when it was logged (epoch ms)
#   "device reported"             one per device in a report to HomeGraph (any function)
#       deviceId      the device
#       deviceType    action.devices.types.*
#       freshnessMs   from the change being queued to the report going out
#       userHash      a hash of the agentUserId, as on the fulfillment's lines
#       statesHash    a hash of the states HomeGraph holds for the device once the report is accepted
#       requestId     the reportStateAndNotification requestId
#       atMs          when it was logged (epoch ms)
#
# Google's rules, as counted here: a QUERY or EXECUTE device result succeeds when its status is SUCCESS or PENDING
# or it is exempt; a HomeGraph call succeeds when its HTTP status is 2xx. GOOD needs >= 99.5 % success on both and a
# QUERY and EXECUTE p90 latency <= 1000 ms, per device type (HomeGraph calls: the whole project). State accuracy
# Google measures itself; report freshness is charted as what drives it (`python -m functions vitals` estimates the
# accuracy from statesHash: docs/vitals.md).

variable "alert_notification_channels" {
  description = "Notification channels (projects/P/notificationChannels/ID) the Home Vitals alert policies notify; empty: the alerts only show in Cloud Monitoring."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for channel in var.alert_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", channel))])
    error_message = "Give notification channels by their full name, projects/PROJECT/notificationChannels/ID."
  }
}

locals {
  # Google's gates.
  vitals_success_gate    = 0.995
  vitals_failure_ceiling = 1 - local.vitals_success_gate
  vitals_latency_gate_ms = 1000

  # What each alert condition and chart point covers. Google grades over days; an hour keeps an alert close to its
  # cause, at the price of alerting on one failure among few requests at quiet times.
  vitals_window = "3600s"

  # Cloud Functions (2nd gen) log as Cloud Run services; the messages say which function logged them.
  run_logs = "resource.type=\"cloud_run_revision\""

  device_result_lines  = "${local.run_logs} AND jsonPayload.message=\"fulfillment device result\" AND jsonPayload.intent=(\"QUERY\" OR \"EXECUTE\")"
  device_succeeded     = "(jsonPayload.status=(\"SUCCESS\" OR \"PENDING\") OR jsonPayload.exempt=true)"
  homegraph_call_lines = "${local.run_logs} AND jsonPayload.message=\"homegraph call\""
  homegraph_succeeded  = "(jsonPayload.status>=200 AND jsonPayload.status<300)"

  device_labels = { intent = "jsonPayload.intent", device_type = "jsonPayload.deviceType" }

  # The counting metrics: Google's success rates are successes over all, alerts watch failures over all (a device
  # type that fails every request has no successes to divide).
  vitals_counters = {
    device_results = {
      name        = "home_vitals/device_results"
      description = "QUERY and EXECUTE results, one per device in an answer."
      filter      = local.device_result_lines
      labels      = local.device_labels
    }
    device_successes = {
      name        = "home_vitals/device_successes"
      description = "QUERY and EXECUTE device results Google counts as successes: SUCCESS, PENDING, or an exempted error or non-blocking exception."
      filter      = "${local.device_result_lines} AND ${local.device_succeeded}"
      labels      = local.device_labels
    }
    device_failures = {
      name        = "home_vitals/device_failures"
      description = "QUERY and EXECUTE device results Google counts as failures: any other status, by error code."
      filter      = "${local.device_result_lines} AND NOT ${local.device_succeeded}"
      labels      = merge(local.device_labels, { error_code = "jsonPayload.errorCode" })
    }
    homegraph_calls = {
      name        = "home_vitals/homegraph_calls"
      description = "Calls to HomeGraph (Report State, Request Sync, ...)."
      filter      = local.homegraph_call_lines
      labels      = { method = "jsonPayload.method" }
    }
    homegraph_call_successes = {
      name        = "home_vitals/homegraph_call_successes"
      description = "Calls to HomeGraph answered with a 2xx status."
      filter      = "${local.homegraph_call_lines} AND ${local.homegraph_succeeded}"
      labels      = { method = "jsonPayload.method" }
    }
    homegraph_call_failures = {
      name        = "home_vitals/homegraph_call_failures"
      description = "Calls to HomeGraph that failed: another status, or none (the call did not get an answer)."
      filter      = "${local.homegraph_call_lines} AND NOT ${local.homegraph_succeeded}"
      labels      = { method = "jsonPayload.method", status = "jsonPayload.status" }
    }
  }

  label_descriptions = {
    intent      = "QUERY or EXECUTE"
    device_type = "the device's type, action.devices.types.*"
    error_code  = "Google's error code of the result"
    method      = "the HomeGraph method called"
    status      = "the HTTP status HomeGraph answered with"
  }

  # Bucket bounds for the latency and freshness distributions, in ms: fine around Google's 1000 ms gate so the
  # interpolated p90 is close either side of it.
  latency_bounds_ms = [25, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1250, 1500, 2000, 3000, 5000, 10000, 30000]
}

resource "google_project_service" "monitoring" {
  for_each = toset(["logging.googleapis.com", "monitoring.googleapis.com"])

  service            = each.value
  disable_on_destroy = false # other things in the project log and alert too
}

resource "google_logging_metric" "vitals" {
  for_each = local.vitals_counters

  name        = each.value.name
  description = each.value.description
  filter      = each.value.filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Home Vitals: ${replace(each.key, "_", " ")}"

    dynamic "labels" {
      for_each = each.value.labels
      content {
        key         = labels.key
        value_type  = "STRING"
        description = local.label_descriptions[labels.key]
      }
    }
  }

  label_extractors = { for label, field in each.value.labels : label => "EXTRACT(${field})" }

  depends_on = [google_project_service.monitoring]
}

resource "google_logging_metric" "device_latency" {
  name        = local.vitals_metric_names.device_latency
  description = "Latency of the QUERY and EXECUTE answers, one sample per device in an answer (Google grades latency per device type)."
  filter      = local.device_result_lines

  value_extractor = "EXTRACT(jsonPayload.latencyMs)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "ms"
    display_name = "Home Vitals: device latency"

    labels {
      key         = "intent"
      value_type  = "STRING"
      description = local.label_descriptions.intent
    }
    labels {
      key         = "device_type"
      value_type  = "STRING"
      description = local.label_descriptions.device_type
    }
  }

  label_extractors = {
    intent      = "EXTRACT(jsonPayload.intent)"
    device_type = "EXTRACT(jsonPayload.deviceType)"
  }

  bucket_options {
    explicit_buckets {
      bounds = local.latency_bounds_ms
    }
  }

  depends_on = [google_project_service.monitoring]
}

resource "google_logging_metric" "report_freshness" {
  name            = local.vitals_metric_names.report_freshness
  description     = "How long after a device's change its report to HomeGraph went out."
  filter          = "${local.run_logs} AND jsonPayload.message=\"device reported\""
  value_extractor = "EXTRACT(jsonPayload.freshnessMs)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "ms"
    display_name = "Home Vitals: report freshness"

    labels {
      key         = "device_type"
      value_type  = "STRING"
      description = local.label_descriptions.device_type
    }
  }

  label_extractors = { device_type = "EXTRACT(jsonPayload.deviceType)" }

  bucket_options {
    explicit_buckets {
      bounds = local.latency_bounds_ms
    }
  }

  depends_on = [google_project_service.monitoring]
}

locals {
  # The time series of each metric, for the alert policies and the dashboard (which depend on the metrics: a
  # policy or chart on a metric that does not exist yet is refused).
  vitals_metric_names = merge({ for key, counter in local.vitals_counters : key => counter.name }, {
    device_latency   = "home_vitals/device_latency"
    report_freshness = "home_vitals/report_freshness"
  })
  vitals_series = {
    for key, name in local.vitals_metric_names :
    key => "metric.type=\"logging.googleapis.com/user/${name}\" AND resource.type=\"cloud_run_revision\""
  }

  vitals_intents = toset(["QUERY", "EXECUTE"])

  alert_documentation = "Google grades the integration on its Home Vitals dashboard (Google Home Developer Console, Analytics) from these same figures. `python -m functions vitals --project PROJECT --since 24h` prints them from the logs, by device type; the logs of the failing calls are in Logs Explorer under the metric's filter (Logging, Log-based metrics)."
}

resource "google_monitoring_alert_policy" "homegraph_success" {
  display_name          = "Home Vitals: calls to HomeGraph below 99.5 % success"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.alert_notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "HomeGraph calls failing above 0.5 %"

    condition_threshold {
      filter             = local.vitals_series.homegraph_call_failures
      denominator_filter = local.vitals_series.homegraph_calls
      comparison         = "COMPARISON_GT"
      threshold_value    = local.vitals_failure_ceiling
      duration           = "0s"

      aggregations {
        alignment_period     = local.vitals_window
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = local.vitals_window
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "Home Vitals: calls to HomeGraph below 99.5 % success"
    content   = "Below 99.5 % successful calls to Google (Report State, Request Sync), Google marks the whole integration POOR. ${local.alert_documentation}"
  }

  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_logging_metric.vitals, google_logging_metric.device_latency, google_logging_metric.report_freshness]
}

resource "google_monitoring_alert_policy" "fulfillment_success" {
  for_each = local.vitals_intents

  display_name          = "Home Vitals: ${each.key} below 99.5 % success"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.alert_notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "${each.key} device results failing above 0.5 %, per device type"

    condition_threshold {
      filter             = "${local.vitals_series.device_failures} AND metric.label.intent=\"${each.key}\""
      denominator_filter = "${local.vitals_series.device_results} AND metric.label.intent=\"${each.key}\""
      comparison         = "COMPARISON_GT"
      threshold_value    = local.vitals_failure_ceiling
      duration           = "0s"

      aggregations {
        alignment_period     = local.vitals_window
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.device_type"]
      }
      denominator_aggregations {
        alignment_period     = local.vitals_window
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.device_type"]
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "Home Vitals: ${each.key} below 99.5 % success for a device type"
    content   = "Google counts a ${each.key} device result a success when it is SUCCESS or PENDING, or its error is one of the exempted user-caused codes or a non-blocking exception; below 99.5 % the device type is POOR. The failures metric (home_vitals/device_failures) has the error codes. ${local.alert_documentation}"
  }

  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_logging_metric.vitals, google_logging_metric.device_latency, google_logging_metric.report_freshness]
}

resource "google_monitoring_alert_policy" "fulfillment_latency" {
  for_each = local.vitals_intents

  display_name          = "Home Vitals: ${each.key} p90 latency above 1000 ms"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.alert_notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "${each.key} p90 latency above 1000 ms, per device type"

    condition_threshold {
      filter          = "${local.vitals_series.device_latency} AND metric.label.intent=\"${each.key}\""
      comparison      = "COMPARISON_GT"
      threshold_value = local.vitals_latency_gate_ms
      duration        = "0s"

      aggregations {
        alignment_period     = local.vitals_window
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_90"
        group_by_fields      = ["metric.label.device_type"]
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "Home Vitals: ${each.key} p90 latency above 1000 ms for a device type"
    content   = "Google wants 90 % of ${each.key} answers within 1000 ms, per device type; slower is POOR. Cold starts (fulfillment_min_instances) and slow device clouds are the usual causes. ${local.alert_documentation}"
  }

  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_logging_metric.vitals, google_logging_metric.device_latency, google_logging_metric.report_freshness]
}

locals {
  per_device_type = {
    alignmentPeriod    = local.vitals_window
    perSeriesAligner   = "ALIGN_DELTA"
    crossSeriesReducer = "REDUCE_SUM"
    groupByFields      = ["metric.label.device_type"]
  }
  whole_project = {
    alignmentPeriod    = local.vitals_window
    perSeriesAligner   = "ALIGN_DELTA"
    crossSeriesReducer = "REDUCE_SUM"
  }
  p90_per_device_type = {
    alignmentPeriod    = local.vitals_window
    perSeriesAligner   = "ALIGN_DELTA"
    crossSeriesReducer = "REDUCE_PERCENTILE_90"
    groupByFields      = ["metric.label.device_type"]
  }
  p50_per_device_type = merge(local.p90_per_device_type, { crossSeriesReducer = "REDUCE_PERCENTILE_50" })
  p95_per_device_type = merge(local.p90_per_device_type, { crossSeriesReducer = "REDUCE_PERCENTILE_95" })

  # One chart per gate, a line per device type, Google's threshold drawn (an xyChart threshold takes no colour or
  # direction).
  vitals_dashboard = {
    displayName = "Home Vitals"
    gridLayout = {
      columns = "2"
      widgets = [
        {
          title = "Calls to HomeGraph: success rate (Google: at least 99.5 %, or the whole integration is POOR)"
          xyChart = {
            chartOptions = { mode = "COLOR" }
            dataSets = [{
              plotType   = "LINE"
              targetAxis = "Y1"
              timeSeriesQuery = {
                timeSeriesFilterRatio = {
                  numerator   = { filter = local.vitals_series.homegraph_call_successes, aggregation = local.whole_project }
                  denominator = { filter = local.vitals_series.homegraph_calls, aggregation = local.whole_project }
                }
              }
            }]
            thresholds = [{ label = "Google's gate: 99.5 %", value = local.vitals_success_gate, targetAxis = "Y1" }]
            yAxis      = { label = "share of calls answered 2xx", scale = "LINEAR" }
          }
        },
        {
          title = "How to read this"
          text = {
            format  = "MARKDOWN"
            content = "Google's Home Vitals gates, computed from the functions' logs (infra/monitoring.tf names the log fields) over ${local.vitals_window} windows. Success rates are per device type: a device type whose every result fails draws no success line, but its alert still fires. State accuracy Google measures itself from QUERY answers and reports; how late reports go out drives it. Locally: `python -m functions vitals`."
          }
        },
        {
          title = "QUERY: success rate by device type (Google: at least 99.5 %)"
          xyChart = {
            chartOptions = { mode = "COLOR" }
            dataSets = [{
              plotType   = "LINE"
              targetAxis = "Y1"
              timeSeriesQuery = {
                timeSeriesFilterRatio = {
                  numerator   = { filter = "${local.vitals_series.device_successes} AND metric.label.intent=\"QUERY\"", aggregation = local.per_device_type }
                  denominator = { filter = "${local.vitals_series.device_results} AND metric.label.intent=\"QUERY\"", aggregation = local.per_device_type }
                }
              }
            }]
            thresholds = [{ label = "Google's gate: 99.5 %", value = local.vitals_success_gate, targetAxis = "Y1" }]
            yAxis      = { label = "share of device results", scale = "LINEAR" }
          }
        },
        {
          title = "EXECUTE: success rate by device type (Google: at least 99.5 %)"
          xyChart = {
            chartOptions = { mode = "COLOR" }
            dataSets = [{
              plotType   = "LINE"
              targetAxis = "Y1"
              timeSeriesQuery = {
                timeSeriesFilterRatio = {
                  numerator   = { filter = "${local.vitals_series.device_successes} AND metric.label.intent=\"EXECUTE\"", aggregation = local.per_device_type }
                  denominator = { filter = "${local.vitals_series.device_results} AND metric.label.intent=\"EXECUTE\"", aggregation = local.per_device_type }
                }
              }
            }]
            thresholds = [{ label = "Google's gate: 99.5 %", value = local.vitals_success_gate, targetAxis = "Y1" }]
            yAxis      = { label = "share of device results", scale = "LINEAR" }
          }
        },
        {
          title = "QUERY: p90 latency by device type (Google: at most 1000 ms)"
          xyChart = {
            chartOptions = { mode = "COLOR" }
            dataSets = [{
              plotType   = "LINE"
              targetAxis = "Y1"
              timeSeriesQuery = {
                timeSeriesFilter = { filter = "${local.vitals_series.device_latency} AND metric.label.intent=\"QUERY\"", aggregation = local.p90_per_device_type }
              }
            }]
            thresholds = [{ label = "Google's gate: 1000 ms", value = local.vitals_latency_gate_ms, targetAxis = "Y1" }]
            yAxis      = { label = "ms", scale = "LINEAR" }
          }
        },
        {
          title = "EXECUTE: p90 latency by device type (Google: at most 1000 ms)"
          xyChart = {
            chartOptions = { mode = "COLOR" }
            dataSets = [{
              plotType   = "LINE"
              targetAxis = "Y1"
              timeSeriesQuery = {
                timeSeriesFilter = { filter = "${local.vitals_series.device_latency} AND metric.label.intent=\"EXECUTE\"", aggregation = local.p90_per_device_type }
              }
            }]
            thresholds = [{ label = "Google's gate: 1000 ms", value = local.vitals_latency_gate_ms, targetAxis = "Y1" }]
            yAxis      = { label = "ms", scale = "LINEAR" }
          }
        },
        {
          title = "State reports: freshness p50 and p95 by device type (Google grades state accuracy, at least 99.5 %, itself)"
          xyChart = {
            chartOptions = { mode = "COLOR" }
            dataSets = [
              {
                plotType        = "LINE"
                targetAxis      = "Y1"
                legendTemplate  = "p50 $${metric.labels.device_type}"
                timeSeriesQuery = { timeSeriesFilter = { filter = local.vitals_series.report_freshness, aggregation = local.p50_per_device_type } }
              },
              {
                plotType        = "LINE"
                targetAxis      = "Y1"
                legendTemplate  = "p95 $${metric.labels.device_type}"
                timeSeriesQuery = { timeSeriesFilter = { filter = local.vitals_series.report_freshness, aggregation = local.p95_per_device_type } }
              },
            ]
            yAxis = { label = "ms from the change to the report", scale = "LINEAR" }
          }
        },
      ]
    }
  }
}

resource "google_monitoring_dashboard" "vitals" {
  dashboard_json = jsonencode(local.vitals_dashboard)

  depends_on = [google_logging_metric.vitals, google_logging_metric.device_latency, google_logging_metric.report_freshness]
}
