#!/usr/bin/env bash
# Deploys the backend with plain gcloud commands: the same resources as the Terraform beside this script (all but
# the Home Vitals monitoring of monitoring.tf), for teams without Terraform. Safe to run again: what exists is kept
# (functions are redeployed, the subscription updated).
#
#   infra/deploy.sh [--dry-run] PROJECT_ID
#   infra/deploy.sh --list-source
#
# --dry-run prints every command instead of running it (and needs neither gcloud nor credentials); --list-source
# prints the files uploaded as the functions' source, as infra/source_files.json defines them (for Terraform too).
# Settings come from the environment, with the Terraform variables' defaults:
#   REGION (us-central1), FIRESTORE_LOCATION (nam5), FIRESTORE_DATABASE ((default)), STATE_TOPIC (device-state),
#   COMMANDS_TOPIC (device-commands), REJECTED_TOPIC (device-state-rejected),
#   DEAD_LETTER_TOPIC (device-state-dead-letter), MAX_DELIVERY_ATTEMPTS (10),
#   ACCOUNT_LINKING_SERVICE_NAME (Smart Home), the pages' brand and languages: ACCOUNT_LINKING_LOGO,
#   ACCOUNT_LINKING_ACCENT_COLOR (#1a73e8), ACCOUNT_LINKING_PRIVACY_URL, ACCOUNT_LINKING_TERMS_URL,
#   ACCOUNT_LINKING_SUPPORT_URL, ACCOUNT_LINKING_PASSWORD_RESET_URL (all empty), ACCOUNT_LINKING_DEFAULT_LANGUAGE (en),
#   ACCOUNT_LINKING_CLIENT_IP_HOP (1), TOKEN_CACHE_SECONDS (10), PYTHON_RUNTIME (python311), MAX_INSTANCES (20),
#   FULFILLMENT_MIN_INSTANCES (0). The functions' tunables come from infra/function-settings.yaml (edit it, or a copy
#   named by FUNCTION_SETTINGS). Each function runs as its own service account, with only what it uses (iam.tf).
set -euo pipefail

usage() {
  # The header comment, up to the first line of code.
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
  exit 2
}

dry_run=0
list_source_only=0
project=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --list-source) list_source_only=1 ;;
    -h | --help) usage ;;
    -*) echo "deploy.sh: unknown option $1" >&2 && usage ;;
    *) project="$1" ;;
  esac
  shift
done
repo_root=$(cd "$(dirname "$0")/.." && pwd)
# The functions' source is defined once, in infra/source_files.json, which Terraform reads too (source_files.tf):
# the files its include globs match, less those an exclude pattern matches. python3 lists them, NUL-separated, from
# the repository root; Python's glob and re behave on the manifest's patterns as Terraform's fileset and regexall do.
source_lister='import glob, json, os, re, sys; rules = json.load(open(sys.argv[1])); found = {f for g in rules["include"] for f in glob.glob(g, recursive=True) if os.path.isfile(f)}; sys.stdout.write("".join(f + "\0" for f in sorted(found) if not any(re.search(x, f) for x in rules["exclude"])))'
list_source="python3 -c '$source_lister' infra/source_files.json"
copy_source="$list_source | tar --null -T - -cf -"
if [ "$list_source_only" = 1 ]; then
  (cd "$repo_root" && eval "$list_source") | tr '\0' '\n'
  exit 0
fi
[ -n "$project" ] || usage

region=${REGION:-us-central1}
firestore_location=${FIRESTORE_LOCATION:-nam5}
database=${FIRESTORE_DATABASE:-(default)}
state_topic=${STATE_TOPIC:-device-state}
commands_topic=${COMMANDS_TOPIC:-device-commands}
dead_letter_topic=${DEAD_LETTER_TOPIC:-device-state-dead-letter}
rejected_topic=${REJECTED_TOPIC:-device-state-rejected}
max_delivery_attempts=${MAX_DELIVERY_ATTEMPTS:-10}
service_name=${ACCOUNT_LINKING_SERVICE_NAME:-Smart Home}
logo=${ACCOUNT_LINKING_LOGO:-}
accent_color=${ACCOUNT_LINKING_ACCENT_COLOR:-#1a73e8}
privacy_url=${ACCOUNT_LINKING_PRIVACY_URL:-}
terms_url=${ACCOUNT_LINKING_TERMS_URL:-}
support_url=${ACCOUNT_LINKING_SUPPORT_URL:-}
password_reset_url=${ACCOUNT_LINKING_PASSWORD_RESET_URL:-}
default_language=${ACCOUNT_LINKING_DEFAULT_LANGUAGE:-en}
client_ip_hop=${ACCOUNT_LINKING_CLIENT_IP_HOP:-1}
token_cache_seconds=${TOKEN_CACHE_SECONDS:-10}
runtime=${PYTHON_RUNTIME:-python311}
max_instances=${MAX_INSTANCES:-20}
fulfillment_min_instances=${FULFILLMENT_MIN_INSTANCES:-0}
event_timeout=300
settings_file=${FUNCTION_SETTINGS:-$(cd "$(dirname "$0")" && pwd)/function-settings.yaml}

# One service account per function (the same as infra/iam.tf's): function name -> account id.
declare -A function_account=(
  [fulfillment]=smart-home-fulfillment
  [authorize]=smart-home-authorize
  [token]=smart-home-token
  [sync-on-device-change]=smart-home-sync
  [report-state]=smart-home-report-state
)
function_names=(fulfillment authorize token sync-on-device-change report-state)
# sa FUNCTION: the service account's e-mail.
sa() {
  printf '%s@%s.iam.gserviceaccount.com' "${function_account[$1]}" "$project"
}
trigger_sa="smart-home-trigger@${project}.iam.gserviceaccount.com"
build_sa="smart-home-build@${project}.iam.gserviceaccount.com"
session_key_secret="account-linking-session-key"
client_secret_secret="google-oauth-client-secret"
webhook_secret="webhook-secret" # signs the calls to the maker's webhook (WEBHOOK_SECRET of the fulfillment)
project_number=""
report_state_url=""
subscription="${state_topic}-to-report-state"

# quote ARG: ARG as the shell reads it back. Placeholders such as ${SOURCE_DIR} (values known only when the
# commands run) stay expandable, so a dry run's output is itself a script.
quote() {
  local arg=$1
  if [[ $arg =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
    printf '%s' "$arg"
  elif [[ $arg =~ \$\{[A-Z_]+\} ]]; then
    arg=${arg//\\/\\\\}
    arg=${arg//\"/\\\"}
    arg=${arg//\`/\\\`}
    printf '"%s"' "$arg"
  else
    printf "'%s'" "${arg//\'/\'\\\'\'}"
  fi
}

# run CMD...: runs it, or prints it in a dry run.
run() {
  if [ "$dry_run" = 1 ]; then
    local arg line=""
    for arg in "$@"; do
      line+="$(quote "$arg") "
    done
    printf '%s\n' "${line% }"
  else
    "$@"
  fi
}

# grant CMD...: an IAM binding, retried for a while: a service account just created takes moments to be known.
grant() {
  if [ "$dry_run" = 1 ]; then
    run "$@"
    return
  fi
  local attempt
  for attempt in 1 2 3 4 5; do
    "$@" >/dev/null && return 0
    echo "deploy.sh: retrying in $((attempt * 5)) s" >&2
    sleep $((attempt * 5))
  done
  "$@" >/dev/null
}

# ensure "WHAT" DESCRIBE-CMD... -- CREATE-CMD...: creates WHAT unless describing it succeeds.
ensure() {
  local what=$1
  shift
  local describe=()
  while [ "$1" != "--" ]; do
    describe+=("$1")
    shift
  done
  shift
  if [ "$dry_run" = 0 ] && "${describe[@]}" >/dev/null 2>&1; then
    echo "deploy.sh: $what exists"
    return 0
  fi
  run "$@"
}

# capture VAR PLACEHOLDER CMD...: VAR=$(CMD); a dry run prints PLACEHOLDER=$(CMD) and sets VAR to ${PLACEHOLDER}.
capture() {
  local var=$1 placeholder=$2
  shift 2
  if [ "$dry_run" = 1 ]; then
    # shellcheck disable=SC2016 # a literal placeholder, expanded where the printed commands run
    printf '%s=$(%s)\n' "$placeholder" "$(run "$@")"
    # shellcheck disable=SC2016 # a literal placeholder, expanded where the printed commands run
    printf -v "$var" '${%s}' "$placeholder"
  else
    printf -v "$var" '%s' "$("$@")"
  fi
}

# new_secret NAME: a secret with one generated version, unless it already has one. The value goes from openssl
# straight to Secret Manager: it is never printed, logged or written to disk.
new_secret() {
  local name=$1
  ensure "secret $name" gcloud secrets describe "$name" --project "$project" -- \
    gcloud secrets create "$name" --project "$project" --replication-policy user-managed --locations "$region"
  if [ "$dry_run" = 1 ]; then
    printf '%s\n' "openssl rand -hex 32 | tr -d '\\n' | gcloud secrets versions add $name --project $project --data-file=-"
  elif [ -z "$(gcloud secrets versions list "$name" --project "$project" --filter 'state=ENABLED' --format 'value(name)' --limit 1)" ]; then
    openssl rand -hex 32 | tr -d '\n' | gcloud secrets versions add "$name" --project "$project" --data-file=-
  fi
}

echo "# APIs"
run gcloud services enable --project "$project" \
  artifactregistry.googleapis.com cloudbuild.googleapis.com cloudfunctions.googleapis.com \
  cloudresourcemanager.googleapis.com eventarc.googleapis.com firestore.googleapis.com homegraph.googleapis.com \
  iam.googleapis.com pubsub.googleapis.com run.googleapis.com secretmanager.googleapis.com storage.googleapis.com \
  cloudscheduler.googleapis.com
capture project_number PROJECT_NUMBER gcloud projects describe "$project" --format 'value(projectNumber)'
pubsub_agent="service-${project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"

echo "# Service accounts: one per function, trigger (Eventarc and Pub/Sub push), build"
for name in "${function_names[@]}"; do
  ensure "service account ${function_account[$name]}" \
    gcloud iam service-accounts describe "$(sa "$name")" --project "$project" -- \
    gcloud iam service-accounts create "${function_account[$name]}" --project "$project" \
    --display-name "Smart Home backend: the $name function"
done
for account in smart-home-trigger smart-home-build; do
  ensure "service account $account" \
    gcloud iam service-accounts describe "$account@$project.iam.gserviceaccount.com" --project "$project" -- \
    gcloud iam service-accounts create "$account" --project "$project" --display-name "Smart Home backend: $account"
done

echo "# Firestore (databases created with gcloud deny all client-SDK access, like infra/firestore.rules)"
ensure "Firestore database $database" gcloud firestore databases describe --database "$database" --project "$project" -- \
  gcloud firestore databases create --database "$database" --location "$firestore_location" \
  --type firestore-native --delete-protection --enable-pitr --project "$project"
# Expired tokens and codes, sign-in throttling windows, idle Request Sync ledgers and Report State bookkeeping are
# deleted by TTL policies (infra/firestore.tf, ttl_fields); their expiry is not indexed.
for ttl in tokens:expiresAt signInAttempts:expiresAt requestSync:expiresAt reportQueue:expireAt announced:expireAt \
  followUps:expiresAt; do
  group=${ttl%%:*}
  field=${ttl#*:}
  run gcloud firestore fields ttls update "$field" --collection-group "$group" --enable-ttl \
    --database "$database" --project "$project" --async
  run gcloud firestore indexes fields update "$field" --collection-group "$group" --disable-indexes \
    --database "$database" --project "$project" --async
done
# The sweep of overdue pending commands asks every user's followUps at once (infra/firestore.tf, pending_give_up).
run gcloud firestore indexes fields update giveUpAt --collection-group followUps \
  --index order=ascending,query-scope=collection-group --database "$database" --project "$project" --async

echo "# Topics"
for topic in "$state_topic" "$commands_topic"; do
  ensure "topic $topic" gcloud pubsub topics describe "$topic" --project "$project" -- \
    gcloud pubsub topics create "$topic" --project "$project"
done
ensure "topic $dead_letter_topic" gcloud pubsub topics describe "$dead_letter_topic" --project "$project" -- \
  gcloud pubsub topics create "$dead_letter_topic" --message-retention-duration 7d --project "$project"
ensure "topic $rejected_topic" gcloud pubsub topics describe "$rejected_topic" --project "$project" -- \
  gcloud pubsub topics create "$rejected_topic" --message-retention-duration 7d --project "$project"
ensure "subscription $rejected_topic" gcloud pubsub subscriptions describe "$rejected_topic" --project "$project" -- \
  gcloud pubsub subscriptions create "$rejected_topic" --project "$project" --topic "$rejected_topic" \
  --expiration-period never --message-retention-duration 7d

echo "# Once a minute, pending commands nobody completed are given up (report_state takes the message; scheduler.tf)"
ensure "scheduler job pending-timeouts" \
  gcloud scheduler jobs describe pending-timeouts --location "$region" --project "$project" -- \
  gcloud scheduler jobs create pubsub pending-timeouts --location "$region" --project "$project" \
  --schedule '* * * * *' --time-zone Etc/UTC --topic "$state_topic" --message-body '{}' \
  --attributes kind=pending-timeouts

echo "# Secrets (generated into Secret Manager; nothing printed)"
new_secret "$session_key_secret"
new_secret "$client_secret_secret"
new_secret "$webhook_secret"

echo "# IAM: least privilege, each function only what its code uses"
for name in "${function_names[@]}"; do
  grant gcloud projects add-iam-policy-binding "$project" --member "serviceAccount:$(sa "$name")" \
    --role roles/datastore.user --condition \
    "title=smart-home-database-only,expression=resource.name == \"projects/$project/databases/$database\""
done
for topic in "$state_topic" "$commands_topic"; do
  grant gcloud pubsub topics add-iam-policy-binding "$topic" --project "$project" \
    --member "serviceAccount:$(sa fulfillment)" --role roles/pubsub.publisher
done
grant gcloud pubsub topics add-iam-policy-binding "$rejected_topic" --project "$project" \
  --member "serviceAccount:$(sa report-state)" --role roles/pubsub.publisher
grant gcloud secrets add-iam-policy-binding "$session_key_secret" --project "$project" \
  --member "serviceAccount:$(sa authorize)" --role roles/secretmanager.secretAccessor
grant gcloud secrets add-iam-policy-binding "$webhook_secret" --project "$project" \
  --member "serviceAccount:$(sa fulfillment)" --role roles/secretmanager.secretAccessor
grant gcloud projects add-iam-policy-binding "$project" --member "serviceAccount:$trigger_sa" \
  --role roles/eventarc.eventReceiver --condition None
grant gcloud iam service-accounts add-iam-policy-binding "$trigger_sa" --project "$project" \
  --member "serviceAccount:$pubsub_agent" --role roles/iam.serviceAccountTokenCreator
for role in roles/logging.logWriter roles/artifactregistry.writer roles/storage.objectViewer; do
  grant gcloud projects add-iam-policy-binding "$project" --member "serviceAccount:$build_sa" --role "$role" \
    --condition None
done

echo "# Source (see --list-source) and the functions' settings"
if [ "$dry_run" = 1 ]; then
  # shellcheck disable=SC2016 # a literal placeholder, expanded where the printed commands run
  source_dir='${SOURCE_DIR}'
  # shellcheck disable=SC2016 # a literal placeholder, expanded where the printed commands run
  env_file='${ENV_FILE}'
  # shellcheck disable=SC2016 # a literal placeholder, expanded where the printed commands run
  printf 'SOURCE_DIR=$(mktemp -d)\nENV_FILE=$(mktemp)\n(cd %s && %s) | tar -xf - -C "$SOURCE_DIR"\n' \
    "$(quote "$repo_root")" "$copy_source"
else
  source_dir=$(mktemp -d)
  env_file=$(mktemp)
  trap 'rm -rf "$source_dir" "$env_file"' EXIT
  (cd "$repo_root" && eval "$copy_source") | tar -xf - -C "$source_dir"
fi
env_yaml="GOOGLE_CLOUD_PROJECT: '$project'
FIRESTORE_DATABASE: '$database'
STATE_TOPIC: '$state_topic'
COMMANDS_TOPIC: '$commands_topic'
REJECTED_TOPIC: '$rejected_topic'
TOKEN_CACHE_SECONDS: '$token_cache_seconds'
ACCOUNT_LINKING_SERVICE_NAME: '${service_name//\'/\'\'}'
ACCOUNT_LINKING_LOGO: '${logo//\'/\'\'}'
ACCOUNT_LINKING_ACCENT_COLOR: '${accent_color//\'/\'\'}'
ACCOUNT_LINKING_PRIVACY_URL: '${privacy_url//\'/\'\'}'
ACCOUNT_LINKING_TERMS_URL: '${terms_url//\'/\'\'}'
ACCOUNT_LINKING_SUPPORT_URL: '${support_url//\'/\'\'}'
ACCOUNT_LINKING_PASSWORD_RESET_URL: '${password_reset_url//\'/\'\'}'
ACCOUNT_LINKING_DEFAULT_LANGUAGE: '${default_language//\'/\'\'}'
ACCOUNT_LINKING_CLIENT_IP_HOP: '$client_ip_hop'
LOG_EXECUTION_ID: 'true'"
if [ "$dry_run" = 1 ]; then
  printf "cat > \"%s\" <<'YAML'\n%s\nYAML\n" "$env_file" "$env_yaml"
  printf 'grep -v "^#" %s >> "%s"\n' "$(quote "$settings_file")" "$env_file"
else
  printf '%s\n' "$env_yaml" >"$env_file"
  grep -v '^#' "$settings_file" >>"$env_file"
fi

common=(--gen2 --project "$project" --region "$region" --runtime "$runtime" --source "$source_dir"
  --build-service-account "projects/$project/serviceAccounts/$build_sa"
  --env-vars-file "$env_file" --max-instances "$max_instances" --quiet)

echo "# HTTPS functions, public (Google calls them; they check their own credentials)"
run gcloud functions deploy fulfillment "${common[@]}" --service-account "$(sa fulfillment)" \
  --entry-point fulfillment --trigger-http --allow-unauthenticated --ingress-settings all --memory 512Mi --cpu 1 \
  --concurrency 16 --timeout 60s --min-instances "$fulfillment_min_instances" \
  --set-secrets "WEBHOOK_SECRET=$webhook_secret:latest"
# argon2 takes 64 MiB a sign-in; only authorize signs the pages' cookies, so only it gets the session key.
run gcloud functions deploy authorize "${common[@]}" --service-account "$(sa authorize)" --entry-point authorize \
  --trigger-http --allow-unauthenticated --ingress-settings all --memory 512Mi --timeout 60s \
  --set-secrets "ACCOUNT_LINKING_SESSION_KEY=$session_key_secret:latest"
run gcloud functions deploy token "${common[@]}" --service-account "$(sa token)" --entry-point token \
  --trigger-http --allow-unauthenticated --ingress-settings all --memory 256Mi --timeout 60s

echo "# Firestore trigger, private: device writes -> Request Sync (the trigger lives in the database's location)"
run gcloud functions deploy sync-on-device-change "${common[@]}" --service-account "$(sa sync-on-device-change)" \
  --entry-point sync_on_device_change \
  --trigger-event-filters type=google.cloud.firestore.document.v1.written \
  --trigger-event-filters "database=$database" \
  --trigger-event-filters-path-pattern 'document=users/{agentUserId}/devices/{deviceId}' \
  --trigger-location "$firestore_location" --trigger-service-account "$trigger_sa" --retry \
  --no-allow-unauthenticated --ingress-settings internal-only --memory 256Mi --timeout "${event_timeout}s"

echo "# Pub/Sub, private: our own push subscription (retries, dead-letter topic) delivers to report_state"
run gcloud functions deploy report-state "${common[@]}" --service-account "$(sa report-state)" \
  --entry-point report_state --trigger-http \
  --no-allow-unauthenticated --ingress-settings internal-only --memory 512Mi --cpu 1 --concurrency 80 \
  --timeout "${event_timeout}s"
for name in sync-on-device-change report-state; do
  grant gcloud functions add-invoker-policy-binding "$name" --project "$project" --region "$region" \
    --member "serviceAccount:$trigger_sa"
done
capture report_state_url REPORT_STATE_URL gcloud functions describe report-state --project "$project" --region "$region" \
  --format 'value(serviceConfig.uri)'
delivery=(--push-endpoint "$report_state_url" --push-auth-service-account "$trigger_sa"
  --ack-deadline "$event_timeout" --min-retry-delay 10s --max-retry-delay 600s
  --dead-letter-topic "$dead_letter_topic" --max-delivery-attempts "$max_delivery_attempts")
if [ "$dry_run" = 0 ] && gcloud pubsub subscriptions describe "$subscription" --project "$project" >/dev/null 2>&1; then
  run gcloud pubsub subscriptions update "$subscription" --project "$project" "${delivery[@]}"
else
  run gcloud pubsub subscriptions create "$subscription" --project "$project" --topic "$state_topic" \
    "${delivery[@]}" --expiration-period never --message-retention-duration 1d
fi
grant gcloud pubsub topics add-iam-policy-binding "$dead_letter_topic" --project "$project" \
  --member "serviceAccount:$pubsub_agent" --role roles/pubsub.publisher
grant gcloud pubsub subscriptions add-iam-policy-binding "$subscription" --project "$project" \
  --member "serviceAccount:$pubsub_agent" --role roles/pubsub.subscriber
ensure "subscription $dead_letter_topic" gcloud pubsub subscriptions describe "$dead_letter_topic" --project "$project" -- \
  gcloud pubsub subscriptions create "$dead_letter_topic" --project "$project" --topic "$dead_letter_topic" \
  --expiration-period never --message-retention-duration 7d

echo "# For the Google Home Developer Console"
for name in fulfillment authorize token; do
  run gcloud functions describe "$name" --project "$project" --region "$region" --format 'value(url)'
done
echo "# The OAuth client secret to paste there (and to register with: python -m functions clients add):"
echo "#   gcloud secrets versions access latest --secret $client_secret_secret --project $project"
