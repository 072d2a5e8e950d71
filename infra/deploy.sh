#!/usr/bin/env bash
# Deploy SceneFlow Export with gcloud (the same deployment as infra/terraform, for teams without
# Terraform): buckets (CORS, lifecycle), jobs topic + dead-letter topic, Artifact Registry, the render
# image, the worker-token secret, the Cloud Run render and stitch jobs, the nine functions from the bundle of
# infra/bundle.sh, the Pub/Sub push subscriptions (jobs, webhook events) with their dead-letter
# policies, Cloud Scheduler, log-based metrics, then the database migration.
#   infra/deploy.sh [--dry-run]        (--dry-run prints every command instead of running it)
# Settings come from the environment (see env.example); required for a real run:
# GOOGLE_CLOUD_PROJECT, INSTANCE_CONNECTION_NAME and DB_MIGRATE_USER (with --dry-run, placeholders).
# Re-runnable: what exists already (buckets, topics, repository, secret, subscriptions, metrics,
# scheduler job) is left alone; the job and the functions are re-deployed.
set -euo pipefail
DRY=0; [[ "${1:-}" == "--dry-run" ]] && DRY=1
run() { if (( DRY )); then printf '%q ' "$@"; echo; else "$@"; fi; }
# exists CMD...: whether a resource exists (its describe succeeds); always "no" in a dry run, so the
# dry run prints every create command.
exists() { if (( DRY )); then return 1; fi; "$@" >/dev/null 2>&1; }
if (( DRY )); then
  : "${GOOGLE_CLOUD_PROJECT:=my-project}"
  : "${INSTANCE_CONNECTION_NAME:=$GOOGLE_CLOUD_PROJECT:${GOOGLE_CLOUD_REGION:-us-central1}:sceneflow}"
  : "${DB_MIGRATE_USER:=you@example.com}"
  : "${PROJECT_NUMBER:=123456789012}"
fi

PROJECT=${GOOGLE_CLOUD_PROJECT:?set GOOGLE_CLOUD_PROJECT}
REGION=${GOOGLE_CLOUD_REGION:-us-central1}
IN=${EXPORT_INPUT_BUCKET:-$PROJECT-sceneflow-input}
OUT=${EXPORT_OUTPUT_BUCKET:-$PROJECT-sceneflow-output}
TOPIC=${EXPORT_JOBS_TOPIC:-export-jobs}
DLQ=${EXPORT_DEAD_LETTER_TOPIC:-$TOPIC-dead-letter}
EVENTS=${EXPORT_EVENTS_TOPIC:-export-events}
EVENTS_DLQ=$EVENTS-dead-letter
WEBHOOK_ATTEMPTS=${WEBHOOK_MAX_DELIVERY_ATTEMPTS:-8}
# local-only webhook settings: a deployment must never let webhooks reach private addresses or trust
# a CA of its own choosing (shared/webhook_url.py), nor send them over plain http
for var in EXPORT_WEBHOOK_ALLOW_PRIVATE_HOSTS EXPORT_WEBHOOK_CA_FILE EXPORT_WEBHOOK_ALLOW_HTTP; do
  if [[ -n "${!var:-}" ]]; then echo "deploy.sh: $var is for the local stacks only; unset it" >&2; exit 2; fi
done
JOB=${RENDER_JOB_NAME:-sceneflow-render}
STITCH_JOB=${RENDER_STITCH_JOB_NAME:-sceneflow-stitch}  # issue 19: joins the parts of a parallel export
REPO=${ARTIFACT_REPOSITORY:-sceneflow}
IMAGE=${RENDER_IMAGE:-$REGION-docker.pkg.dev/$PROJECT/$REPO/render:$(git -C "$(dirname "$0")" rev-parse --short=12 HEAD 2>/dev/null || echo latest)}
SECRET=${WORKER_TOKEN_SECRET:-sceneflow-worker-token}
FN_SA=${FUNCTIONS_SA:-sceneflow-api@$PROJECT.iam.gserviceaccount.com}
DISPATCH_SA=${DISPATCHER_SA:-sceneflow-dispatch@$PROJECT.iam.gserviceaccount.com}
JOB_SA=${RENDER_SA:-sceneflow-render@$PROJECT.iam.gserviceaccount.com}
INVOKER_SA=${INVOKER_SA:-sceneflow-invoker@$PROJECT.iam.gserviceaccount.com}
INSTANCE=${INSTANCE_CONNECTION_NAME:?set INSTANCE_CONNECTION_NAME (project:region:instance)}
RETENTION_DAYS=${EXPORT_RETENTION_DAYS:-7}
MAX_INSTANCES=${FUNCTIONS_MAX_INSTANCES:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
API_BASE=${EXPORT_API_BASE:-https://$REGION-$PROJECT.cloudfunctions.net}
MIGRATE_PYTHON=${MIGRATE_PYTHON:-$ROOT/.venv/bin/python}
# browser origins (shared/cors.py): the client functions and both buckets get the same value; empty = none
CORS_ORIGINS=${EXPORT_CORS_ORIGINS:-}

# Function source bundle (main.py + shared/ + the functions' requirements.txt): one script builds it.
BUNDLE=${BUNDLE_DIR:-$(mktemp -d)/bundle}
"$ROOT/infra/bundle.sh" "$BUNDLE" >/dev/null
# Bucket settings: CORS for pages (input: signed PUTs; output: GET/HEAD of the video, poster and
# captions), written by shared/cors.py (a malformed origin stops here, named); objects deleted after
# RETENTION_DAYS.
CONF=$(mktemp -d)
trap 'rm -rf "$CONF"; [[ -n "${BUNDLE_DIR:-}" ]] || rm -rf "$(dirname "$BUNDLE")"' EXIT
for b in input output; do  # standard library only: any python3 will do
  PYTHONPATH=$ROOT "${CORS_PYTHON:-python3}" -m shared.cors bucket-json "$b" "$CORS_ORIGINS" > "$CONF/cors-$b.json"
done
printf '{"rule": [{"action": {"type": "Delete"}, "condition": {"age": %d}}]}\n' "$RETENTION_DAYS" > "$CONF/lifecycle.json"
# the output bucket also deletes a parallel render's pieces left behind (parts/; shared/artifacts.py
# PARTS_TTL_DAYS): they are deleted when the export succeeds, this catches failed and canceled ones
PARTS_TTL_DAYS=2
printf '{"rule": [{"action": {"type": "Delete"}, "condition": {"age": %d}}, {"action": {"type": "Delete"}, "condition": {"age": %d, "matchesPrefix": ["parts/"]}}]}\n' \
  "$RETENTION_DAYS" "$PARTS_TTL_DAYS" > "$CONF/output-lifecycle.json"

# Limits (README: Limits): each setting goes to the processes that read it, the table's value unless
# it is set here. The task's memory is given to it as RENDER_MEMORY_BYTES too (its preflight compares
# the job's files with it); RENDER_MEMORY takes the forms Terraform's render_memory takes.
RENDER_CPU=${RENDER_CPU:-4}
RENDER_MEMORY=${RENDER_MEMORY:-8Gi}
RENDER_STITCH_CPU=${RENDER_STITCH_CPU:-2}  # the stitch job's size (README: Limits)
RENDER_STITCH_MEMORY=${RENDER_STITCH_MEMORY:-6Gi}
for var in RENDER_CPU RENDER_STITCH_CPU; do  # the task gets it as RENDER_VCPUS (its cost)
  if [[ ! ${!var} =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
    echo "$var must be a number of vCPUs (e.g. 4 or 0.5), not ${!var}" >&2; exit 2
  fi
done
if [[ ! $RENDER_MEMORY =~ ^[0-9]+(Gi|Mi)$ ]]; then
  echo "RENDER_MEMORY must be a whole number of Gi or Mi (e.g. 8Gi, 6144Mi), not $RENDER_MEMORY" >&2; exit 2
fi
if [[ ! $RENDER_STITCH_MEMORY =~ ^[0-9]+(Gi|Mi)$ ]]; then
  echo "RENDER_STITCH_MEMORY must be a whole number of Gi or Mi (e.g. 6Gi, 6144Mi), not $RENDER_STITCH_MEMORY" >&2; exit 2
fi
bytes_of() {  # NGi or NMi -> bytes (10#: 08Gi is not octal)
  case $1 in
    *Gi) echo $(( 10#${1%Gi} * 1073741824 )) ;;
    *Mi) echo $(( 10#${1%Mi} * 1048576 )) ;;
  esac
}
MEMORY_BYTES=$(bytes_of "$RENDER_MEMORY")
STITCH_MEMORY_BYTES=$(bytes_of "$RENDER_STITCH_MEMORY")
TASK_TIMEOUT_S=${RENDER_TASK_TIMEOUT_S:-3600}
STITCH_TIMEOUT_S=${RENDER_STITCH_TASK_TIMEOUT_S:-900}
# EXPORT_MAX_*: the functions and the render job both read some of them
LIMITS="EXPORT_MAX_SCENES=${EXPORT_MAX_SCENES:-200},EXPORT_MAX_TOTAL_S=${EXPORT_MAX_TOTAL_S:-1800}"
LIMITS="$LIMITS,EXPORT_MAX_ASSETS=${EXPORT_MAX_ASSETS:-401},EXPORT_MAX_ASSET_BYTES=${EXPORT_MAX_ASSET_BYTES:-524288000}"
LIMITS="$LIMITS,EXPORT_MAX_JOB_BYTES=${EXPORT_MAX_JOB_BYTES:-2147483648}"
LIMITS="$LIMITS,EXPORT_MAX_OUTPUT_BYTES=${EXPORT_MAX_OUTPUT_BYTES:-2147483648}"
LIMITS="$LIMITS,EXPORT_MAX_BODY_BYTES=${EXPORT_MAX_BODY_BYTES:-1000000},EXPORT_MAX_CAPTION_CHARS=${EXPORT_MAX_CAPTION_CHARS:-500}"
# the most parts of a parallel export (issue 19): the functions launch the executions, the render
# job asks for a handoff to one (render_job/handoff.py)
LIMITS="$LIMITS,RENDER_MAX_PARTS=${RENDER_MAX_PARTS:-16}"
# ... and the threshold and floor that cut it: dispatch, the handoff, every part task and the stitch
# must cut the same parts, so all of them get the same values
LIMITS="$LIMITS,RENDER_PARALLEL_AFTER_S=${RENDER_PARALLEL_AFTER_S:-120},RENDER_MIN_PART_S=${RENDER_MIN_PART_S:-10}"
# the functions only: signed URL lifetimes, the upload deadline, each execution's task timeout
FN_LIMITS="EXPORT_UPLOAD_URL_TTL_S=${EXPORT_UPLOAD_URL_TTL_S:-900},EXPORT_DOWNLOAD_URL_TTL_S=${EXPORT_DOWNLOAD_URL_TTL_S:-900}"
FN_LIMITS="$FN_LIMITS,EXPORT_UPLOAD_TTL_S=${EXPORT_UPLOAD_TTL_S:-3600},RENDER_TASK_TIMEOUT_S=$TASK_TIMEOUT_S"
FN_LIMITS="$FN_LIMITS,RENDER_STITCH_TASK_TIMEOUT_S=$STITCH_TIMEOUT_S"
# each job's own size, told to its task: memory, vCPUs, task timeout
RENDER_SIZE="RENDER_MEMORY_BYTES=$MEMORY_BYTES,RENDER_VCPUS=$RENDER_CPU,RENDER_TASK_TIMEOUT_S=$TASK_TIMEOUT_S"
STITCH_SIZE="RENDER_MEMORY_BYTES=$STITCH_MEMORY_BYTES,RENDER_VCPUS=$RENDER_STITCH_CPU,RENDER_TASK_TIMEOUT_S=$STITCH_TIMEOUT_S"
# the render (and stitch) job only: preflight and FFmpeg's time limit
RENDER_LIMITS="RENDER_TIMEOUT_BASE_S=${RENDER_TIMEOUT_BASE_S:-60},RENDER_TIMEOUT_PER_OUTPUT_S=${RENDER_TIMEOUT_PER_OUTPUT_S:-1.5}"
RENDER_LIMITS="$RENDER_LIMITS,RENDER_MAX_IMAGE_PIXELS=${RENDER_MAX_IMAGE_PIXELS:-400000000}"
RENDER_LIMITS="$RENDER_LIMITS,RENDER_MAX_DECODE_PIXELS=${RENDER_MAX_DECODE_PIXELS:-50000000},RENDER_MAX_MEDIA_S=${RENDER_MAX_MEDIA_S:-3600}"

ENV="EXPORT_INPUT_BUCKET=$IN,EXPORT_OUTPUT_BUCKET=$OUT,EXPORT_JOBS_TOPIC=$TOPIC,GOOGLE_CLOUD_PROJECT=$PROJECT"
ENV="$ENV,EXPORT_EVENTS_TOPIC=$EVENTS${EXPORT_WEBHOOK_DEFAULT_URL:+,EXPORT_WEBHOOK_DEFAULT_URL=$EXPORT_WEBHOOK_DEFAULT_URL}"
ENV="$ENV,GOOGLE_CLOUD_REGION=$REGION,RENDER_JOB_NAME=$JOB,RENDER_STITCH_JOB_NAME=$STITCH_JOB"
ENV="$ENV,INSTANCE_CONNECTION_NAME=$INSTANCE,EXPORT_API_BASE=$API_BASE"
ENV="$ENV,EXPORT_COMPLETE_URL=$API_BASE/export-complete,EXPORT_STATUS_URL=$API_BASE/export-status"
ENV="$ENV,DB_NAME=${DB_NAME:-sceneflow},DB_IAM_AUTH=true,$LIMITS,$FN_LIMITS"
ENV="$ENV,EXPORT_CORS_ORIGINS=${CORS_ORIGINS//,/ }"  # gcloud splits at commas: the list goes space-separated
# Client authentication (README: Authenticate). Every deployed function must be told EXPORT_AUTH (it
# refuses to start open by accident). CLIENT_ACCESS=iam (default) keeps export-start/status/cancel
# private: the app's backend sends its Google ID token in X-Serverless-Authorization (Cloud Run checks
# and strips it) and, with server_key, its sfk_ key in Authorization. CLIENT_ACCESS=public lets
# browsers call them with ID tokens; then our own check is the gate, so EXPORT_AUTH must not be open.
AUTH=${EXPORT_AUTH:-open}
CLIENT_ACCESS=${CLIENT_ACCESS:-iam}
case $CLIENT_ACCESS in
  iam) CLIENT_INVOKE=--no-allow-unauthenticated ;;
  public) CLIENT_INVOKE=--allow-unauthenticated
          if [[ $AUTH == open ]]; then echo "CLIENT_ACCESS=public needs EXPORT_AUTH (server_key, id_token), not open" >&2; exit 2; fi ;;
  *) echo "CLIENT_ACCESS must be iam or public, not $CLIENT_ACCESS" >&2; exit 2 ;;
esac
# gcloud splits --set-env-vars at commas: lists go space-separated (the settings take either)
ENV="$ENV,EXPORT_AUTH=${AUTH//,/ }"
for v in EXPORT_OIDC_ISSUER EXPORT_OIDC_AUDIENCE EXPORT_OIDC_JWKS_URL EXPORT_OIDC_ALGORITHMS EXPORT_OIDC_CLOCK_SKEW_S; do
  if [[ -n ${!v:-} ]]; then value=${!v}; ENV="$ENV,$v=${value//,/ }"; fi
done
# Cloud SQL IAM database users of service accounts drop the ".gserviceaccount.com" suffix.
db_user() { echo "${DB_USER:-${1%.gserviceaccount.com}}"; }
SECRETS="EXPORT_WORKER_TOKEN=$SECRET:latest"

# --- storage, messaging, registry, secret
for b in "$IN" "$OUT"; do
  exists gcloud storage buckets describe "gs://$b" --project="$PROJECT" ||
    run gcloud storage buckets create "gs://$b" --project="$PROJECT" --location="$REGION" \
      --uniform-bucket-level-access --public-access-prevention --lifecycle-file="$CONF/lifecycle.json"
done
run gcloud storage buckets update "gs://$IN" --project="$PROJECT" --cors-file="$CONF/cors-input.json"
run gcloud storage buckets update "gs://$OUT" --project="$PROJECT" --lifecycle-file="$CONF/output-lifecycle.json" \
  --cors-file="$CONF/cors-output.json"
exists gcloud pubsub topics describe "$TOPIC" --project="$PROJECT" || run gcloud pubsub topics create "$TOPIC" --project="$PROJECT"
for t in "$DLQ" "$EVENTS" "$EVENTS_DLQ"; do
  exists gcloud pubsub topics describe "$t" --project="$PROJECT" || run gcloud pubsub topics create "$t" --project="$PROJECT"
done
# pull subscriptions keep dead-lettered messages for inspection and replay (README: Runbook)
for t in "$DLQ" "$EVENTS_DLQ"; do
  exists gcloud pubsub subscriptions describe "$t-hold" --project="$PROJECT" ||
    run gcloud pubsub subscriptions create "$t-hold" --project="$PROJECT" --topic="$t" \
      --message-retention-duration=7d --expiration-period=never
done
exists gcloud artifacts repositories describe "$REPO" --project="$PROJECT" --location="$REGION" ||
  run gcloud artifacts repositories create "$REPO" --project="$PROJECT" --location="$REGION" --repository-format=docker
# the one image build (infra/image.sh, as make image); CONTAINER_ENGINE=podman to build and push with podman
ENGINE=${CONTAINER_ENGINE:-docker}
[[ "$(basename "$ENGINE")" == docker ]] && run gcloud auth configure-docker "$REGION-docker.pkg.dev" --quiet
CONTAINER_ENGINE="$ENGINE"; export CONTAINER_ENGINE
run "$ROOT/infra/image.sh" --tag "$IMAGE"
run "$ENGINE" push "$IMAGE"
if ! exists gcloud secrets describe "$SECRET" --project="$PROJECT"; then
  run gcloud secrets create "$SECRET" --project="$PROJECT" --replication-policy=automatic
  if (( DRY )); then echo "openssl rand -hex 32 | gcloud secrets versions add $SECRET --data-file=- --project=$PROJECT";
  else openssl rand -hex 32 | gcloud secrets versions add "$SECRET" --data-file=- --project="$PROJECT"; fi
fi

# --- the render job
# --- service accounts and their least roles (README's table)
for sa in "$FN_SA" "$DISPATCH_SA" "$JOB_SA" "$INVOKER_SA"; do
  exists gcloud iam service-accounts describe "$sa" --project="$PROJECT" ||
    run gcloud iam service-accounts create "${sa%%@*}" --project="$PROJECT" --display-name="SceneFlow ${sa%%@*}"
done
for sa in "$FN_SA" "$DISPATCH_SA"; do
  for role in roles/cloudsql.client roles/cloudsql.instanceUser; do
    run gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$sa" --role="$role" --condition=None
  done
  run gcloud iam service-accounts add-iam-policy-binding "$JOB_SA" --project="$PROJECT" \
    --member="serviceAccount:$sa" --role=roles/iam.serviceAccountUser
done
run gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$INVOKER_SA" \
  --role=roles/eventarc.eventReceiver --condition=None
run gcloud iam service-accounts add-iam-policy-binding "$FN_SA" --project="$PROJECT" \
  --member="serviceAccount:$FN_SA" --role=roles/iam.serviceAccountTokenCreator
run gcloud storage buckets add-iam-policy-binding "gs://$IN" --member="serviceAccount:$FN_SA" --role=roles/storage.objectAdmin
run gcloud storage buckets add-iam-policy-binding "gs://$OUT" --member="serviceAccount:$FN_SA" --role=roles/storage.objectViewer
run gcloud storage buckets add-iam-policy-binding "gs://$IN" --member="serviceAccount:$JOB_SA" --role=roles/storage.objectViewer
for role in roles/storage.objectCreator roles/storage.objectViewer; do
  run gcloud storage buckets add-iam-policy-binding "gs://$OUT" --member="serviceAccount:$JOB_SA" --role="$role"
done
run gcloud pubsub topics add-iam-policy-binding "$TOPIC" --project="$PROJECT" --member="serviceAccount:$FN_SA" \
  --role=roles/pubsub.publisher
for sa in "$FN_SA" "$DISPATCH_SA"; do  # every function applying a transition publishes its event
  run gcloud pubsub topics add-iam-policy-binding "$EVENTS" --project="$PROJECT" --member="serviceAccount:$sa" \
    --role=roles/pubsub.publisher
done
for sa in "$FN_SA" "$JOB_SA"; do
  run gcloud secrets add-iam-policy-binding "$SECRET" --project="$PROJECT" --member="serviceAccount:$sa" \
    --role=roles/secretmanager.secretAccessor
done

JOB_ENV="EXPORT_INPUT_BUCKET=$IN,EXPORT_OUTPUT_BUCKET=$OUT,EXPORT_API_BASE=$API_BASE,EXPORT_COMPLETE_URL=$API_BASE/export-complete,RENDER_MAX_RETRIES=${RENDER_MAX_RETRIES:-3},$LIMITS,$RENDER_LIMITS"
# --parallelism=0 (as many tasks at once as the quota allows): RunJob cannot override parallelism and
# an execution's must not exceed its task count, so a bound here would break the one-task runs; a
# parallel export's K (at most RENDER_MAX_PARTS) bounds it instead (DESIGN §9)
run gcloud run jobs deploy "$JOB" --project="$PROJECT" --region="$REGION" --image="$IMAGE" \
  --tasks=1 --parallelism=0 --max-retries="${RENDER_MAX_RETRIES:-3}" --task-timeout="${TASK_TIMEOUT_S}s" \
  --cpu="$RENDER_CPU" --memory="$RENDER_MEMORY" --service-account="$JOB_SA" \
  --set-env-vars="$JOB_ENV,$RENDER_SIZE" --set-secrets="$SECRETS"
# the stitch (issue 19): the same image, account and settings, its own size and time limit, one task
run gcloud run jobs deploy "$STITCH_JOB" --project="$PROJECT" --region="$REGION" --image="$IMAGE" \
  --tasks=1 --max-retries="${RENDER_MAX_RETRIES:-3}" --task-timeout="${STITCH_TIMEOUT_S}s" \
  --cpu="$RENDER_STITCH_CPU" --memory="$RENDER_STITCH_MEMORY" --service-account="$JOB_SA" \
  --set-env-vars="$JOB_ENV,$STITCH_SIZE" --set-secrets="$SECRETS"
for j in "$JOB" "$STITCH_JOB"; do
  for sa in "$FN_SA" "$DISPATCH_SA"; do  # run with overrides, read and cancel executions
    run gcloud run jobs add-iam-policy-binding "$j" --project="$PROJECT" --region="$REGION" \
      --member="serviceAccount:$sa" --role=roles/run.developer
  done
done

# --- the functions (gen2), all from the same bundle
common=(--project="$PROJECT" --region="$REGION" --gen2 --runtime=python311 --source="$BUNDLE"
        --max-instances="$MAX_INSTANCES")
# the API account runs the client functions, export-complete, reconcile and finalize (worker token
# as a secret); the dispatcher account only claims jobs and starts executions (no storage, no secret)
api=("${common[@]}" --service-account="$FN_SA" --set-env-vars="$ENV,DB_USER=$(db_user "$FN_SA")" --set-secrets="$SECRETS")
for fn in export_start export_status export_cancel export_list export_webhook_secret; do
  run gcloud functions deploy "${fn//_/-}" "${api[@]}" --entry-point="$fn" --trigger-http "$CLIENT_INVOKE"
done
run gcloud functions deploy reconcile-exports "${api[@]}" --entry-point=reconcile_exports --trigger-http --no-allow-unauthenticated
# export_complete is called by the render job with the worker token (Authorization: Bearer), which
# the function checks in constant time; it carries no Google ID token, so the platform must not
# require IAM for this one function.
run gcloud functions deploy export-complete "${api[@]}" --entry-point=export_complete --trigger-http --allow-unauthenticated
# dispatch_export (a CloudEvent function) is fed by our own push subscription, so that it has a
# dead-letter policy: Pub/Sub retries with backoff and, after 10 attempts, moves the message to $DLQ.
run gcloud functions deploy dispatch-export "${common[@]}" --service-account="$DISPATCH_SA" \
  --set-env-vars="$ENV,DB_USER=$(db_user "$DISPATCH_SA")" --entry-point=dispatch_export --trigger-http --no-allow-unauthenticated
# deliver_webhook likewise (its subscription retries each webhook with backoff, then dead-letters);
# it needs the database only, as the dispatcher does
run gcloud functions deploy deliver-webhook "${common[@]}" --service-account="$DISPATCH_SA" \
  --set-env-vars="$ENV,DB_USER=$(db_user "$DISPATCH_SA")" --entry-point=deliver_webhook --trigger-http --no-allow-unauthenticated
# One Eventarc trigger per bucket: the same entry point serves the input and the output bucket.
for b in "$IN" "$OUT"; do
  name=on-finalized-$([[ $b == "$IN" ]] && echo input || echo output)
  run gcloud functions deploy "$name" "${api[@]}" --entry-point=on_object_finalized \
    --trigger-event-filters="type=google.cloud.storage.object.v1.finalized" --trigger-event-filters="bucket=$b" \
    --trigger-service-account="$INVOKER_SA" --retry
done

# --- Pub/Sub -> dispatch-export, with the dead-letter policy
if (( ! DRY )) && [[ -z "${PROJECT_NUMBER:-}" ]]; then
  PROJECT_NUMBER=$(gcloud projects describe "$PROJECT" --format='value(projectNumber)'); fi
PUBSUB_AGENT="serviceAccount:service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com"
run gcloud functions add-invoker-policy-binding dispatch-export --project="$PROJECT" --region="$REGION" \
  --member="serviceAccount:$INVOKER_SA"
exists gcloud pubsub subscriptions describe "$TOPIC-dispatch" --project="$PROJECT" ||
  run gcloud pubsub subscriptions create "$TOPIC-dispatch" --project="$PROJECT" --topic="$TOPIC" \
    --push-endpoint="$API_BASE/dispatch-export/projects/$PROJECT/topics/$TOPIC" \
    --push-auth-service-account="$INVOKER_SA" --push-auth-token-audience="$API_BASE/dispatch-export" \
    --ack-deadline=60 --min-retry-delay=10s --max-retry-delay=600s \
    --dead-letter-topic="$DLQ" --max-delivery-attempts=10
# the Pub/Sub service agent forwards undeliverable messages: publisher on $DLQ, subscriber on the source
run gcloud pubsub topics add-iam-policy-binding "$DLQ" --project="$PROJECT" --member="$PUBSUB_AGENT" --role=roles/pubsub.publisher
run gcloud pubsub subscriptions add-iam-policy-binding "$TOPIC-dispatch" --project="$PROJECT" \
  --member="$PUBSUB_AGENT" --role=roles/pubsub.subscriber
# --- Pub/Sub -> deliver-webhook (job events as signed webhooks), dead-lettered after $WEBHOOK_ATTEMPTS
run gcloud functions add-invoker-policy-binding deliver-webhook --project="$PROJECT" --region="$REGION" \
  --member="serviceAccount:$INVOKER_SA"
exists gcloud pubsub subscriptions describe "$EVENTS-deliver" --project="$PROJECT" ||
  run gcloud pubsub subscriptions create "$EVENTS-deliver" --project="$PROJECT" --topic="$EVENTS" \
    --push-endpoint="$API_BASE/deliver-webhook/projects/$PROJECT/topics/$EVENTS" \
    --push-auth-service-account="$INVOKER_SA" --push-auth-token-audience="$API_BASE/deliver-webhook" \
    --ack-deadline=60 --min-retry-delay=10s --max-retry-delay=600s \
    --dead-letter-topic="$EVENTS_DLQ" --max-delivery-attempts="$WEBHOOK_ATTEMPTS"
run gcloud pubsub topics add-iam-policy-binding "$EVENTS_DLQ" --project="$PROJECT" --member="$PUBSUB_AGENT" --role=roles/pubsub.publisher
run gcloud pubsub subscriptions add-iam-policy-binding "$EVENTS-deliver" --project="$PROJECT" \
  --member="$PUBSUB_AGENT" --role=roles/pubsub.subscriber

# --- Cloud Scheduler: reconcile-exports every 5 minutes (OIDC token of the invoker account)
run gcloud functions add-invoker-policy-binding reconcile-exports --project="$PROJECT" --region="$REGION" \
  --member="serviceAccount:$INVOKER_SA"
exists gcloud scheduler jobs describe sceneflow-reconcile --project="$PROJECT" --location="$REGION" ||
  run gcloud scheduler jobs create http sceneflow-reconcile --project="$PROJECT" --location="$REGION" \
    --schedule="*/5 * * * *" --http-method=POST --uri="$API_BASE/reconcile-exports" \
    --oidc-service-account-email="$INVOKER_SA" --oidc-token-audience="$API_BASE/reconcile-exports"

# --- log-based metrics (alert policies: infra/terraform, or the console)
metric() {
  exists gcloud logging metrics describe "$1" --project="$PROJECT" ||
    run gcloud logging metrics create "$1" --project="$PROJECT" --description="$2" --log-filter="$3"
}
metric sceneflow_failed_exports "SceneFlow exports that ended failed" 'jsonPayload.message="export failed"'
metric sceneflow_stuck_exports "SceneFlow exports failed by reconcile (stale or dead execution)" \
  'jsonPayload.message="reconcile failed a stale export"'
metric sceneflow_publish_failures "SceneFlow jobs left queued because publishing failed" \
  'jsonPayload.message="publish failed; job stays queued"'

# --- schema: Alembic migrations through the Cloud SQL connector, as the deployer's IAM database user
# (DB_MIGRATE_USER: your Google account email), with the project's venv.
run env INSTANCE_CONNECTION_NAME="$INSTANCE" DB_IAM_AUTH=true DB_USER="${DB_MIGRATE_USER:?set DB_MIGRATE_USER}" \
  DB_NAME="${DB_NAME:-sceneflow}" "$MIGRATE_PYTHON" -m shared.db
