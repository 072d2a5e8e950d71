#!/usr/bin/env bash
# Deploy SceneFlow Export with gcloud: buckets, topic, worker-token secret, the Cloud Run render
# job, the five functions (event functions with --retry), then the database migration.
#   infra/deploy.sh [--dry-run]        (--dry-run prints every command instead of running it)
# Settings come from the environment (see env.example); required for a real run:
# GOOGLE_CLOUD_PROJECT and INSTANCE_CONNECTION_NAME (with --dry-run, placeholders are used).
set -euo pipefail
DRY=0; [[ "${1:-}" == "--dry-run" ]] && DRY=1
run() { if (( DRY )); then printf '%q ' "$@"; echo; else "$@"; fi; }
if (( DRY )); then
  : "${GOOGLE_CLOUD_PROJECT:=my-project}"
  : "${INSTANCE_CONNECTION_NAME:=$GOOGLE_CLOUD_PROJECT:${GOOGLE_CLOUD_REGION:-us-central1}:sceneflow}"
  : "${DB_MIGRATE_USER:=you@example.com}"
fi

PROJECT=${GOOGLE_CLOUD_PROJECT:?set GOOGLE_CLOUD_PROJECT}
REGION=${GOOGLE_CLOUD_REGION:-us-central1}
IN=${EXPORT_INPUT_BUCKET:-$PROJECT-sceneflow-input}
OUT=${EXPORT_OUTPUT_BUCKET:-$PROJECT-sceneflow-output}
TOPIC=${EXPORT_JOBS_TOPIC:-export-jobs}
JOB=${RENDER_JOB_NAME:-sceneflow-render}
IMAGE=${RENDER_IMAGE:-$REGION-docker.pkg.dev/$PROJECT/sceneflow/render:latest}
SECRET=${WORKER_TOKEN_SECRET:-sceneflow-worker-token}
FN_SA=${FUNCTIONS_SA:-sceneflow-api@$PROJECT.iam.gserviceaccount.com}
JOB_SA=${RENDER_SA:-sceneflow-render@$PROJECT.iam.gserviceaccount.com}
INSTANCE=${INSTANCE_CONNECTION_NAME:?set INSTANCE_CONNECTION_NAME (project:region:instance)}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
API_BASE=${EXPORT_API_BASE:-https://$REGION-$PROJECT.cloudfunctions.net}

# Function source bundle: main.py + shared/ + requirements.txt (gen2 needs main.py at the root).
BUNDLE=${BUNDLE_DIR:-$(mktemp -d)}
mkdir -p "$BUNDLE"
cp "$ROOT/functions/main.py" "$ROOT/requirements.txt" "$BUNDLE/"
cp -r "$ROOT/shared" "$BUNDLE/shared"
find "$BUNDLE" -name __pycache__ -prune -exec rm -rf {} +

ENV="EXPORT_INPUT_BUCKET=$IN,EXPORT_OUTPUT_BUCKET=$OUT,EXPORT_JOBS_TOPIC=$TOPIC,GOOGLE_CLOUD_PROJECT=$PROJECT"
ENV="$ENV,GOOGLE_CLOUD_REGION=$REGION,RENDER_JOB_NAME=$JOB,INSTANCE_CONNECTION_NAME=$INSTANCE,EXPORT_API_BASE=$API_BASE"
ENV="$ENV,EXPORT_COMPLETE_URL=$API_BASE/export-complete,EXPORT_STATUS_URL=$API_BASE/export-status"
# Cloud SQL IAM database users of service accounts drop the ".gserviceaccount.com" suffix.
ENV="$ENV,DB_USER=${DB_USER:-${FN_SA%.gserviceaccount.com}},DB_NAME=${DB_NAME:-sceneflow},DB_IAM_AUTH=true"
SECRETS="EXPORT_WORKER_TOKEN=$SECRET:latest"

run gcloud storage buckets create "gs://$IN" --project="$PROJECT" --location="$REGION" --uniform-bucket-level-access --public-access-prevention
run gcloud storage buckets create "gs://$OUT" --project="$PROJECT" --location="$REGION" --uniform-bucket-level-access --public-access-prevention
run gcloud pubsub topics create "$TOPIC" --project="$PROJECT"
run gcloud artifacts repositories create sceneflow --project="$PROJECT" --location="$REGION" --repository-format=docker
run gcloud auth configure-docker "$REGION-docker.pkg.dev" --quiet
run docker build -f "$ROOT/infra/Dockerfile" -t "$IMAGE" "$ROOT"
run docker push "$IMAGE"
run gcloud secrets create "$SECRET" --project="$PROJECT" --replication-policy=automatic
if (( DRY )); then echo "openssl rand -hex 32 | gcloud secrets versions add $SECRET --data-file=- --project=$PROJECT";
else openssl rand -hex 32 | gcloud secrets versions add "$SECRET" --data-file=- --project="$PROJECT"; fi

run gcloud run jobs deploy "$JOB" --project="$PROJECT" --region="$REGION" --image="$IMAGE" \
  --tasks=1 --max-retries="${RENDER_MAX_RETRIES:-3}" --task-timeout="${RENDER_TASK_TIMEOUT_S:-3600}s" \
  --cpu=4 --memory=4Gi --service-account="$JOB_SA" \
  --set-env-vars="EXPORT_INPUT_BUCKET=$IN,EXPORT_OUTPUT_BUCKET=$OUT,EXPORT_API_BASE=$API_BASE,EXPORT_COMPLETE_URL=$API_BASE/export-complete,RENDER_MAX_RETRIES=${RENDER_MAX_RETRIES:-3}" \
  --set-secrets="$SECRETS"

common=(--project="$PROJECT" --region="$REGION" --gen2 --runtime=python311 --source="$BUNDLE"
        --service-account="$FN_SA" --set-env-vars="$ENV" --set-secrets="$SECRETS" --max-instances=20)
for fn in export_start export_status; do
  run gcloud functions deploy "${fn//_/-}" "${common[@]}" --entry-point="$fn" --trigger-http --no-allow-unauthenticated
done
# export_complete is called by the render job with the worker token (Authorization: Bearer), which
# the function checks in constant time; it carries no Google ID token, so the platform must not
# require IAM for this one function.
run gcloud functions deploy export-complete "${common[@]}" --entry-point=export_complete --trigger-http --allow-unauthenticated
run gcloud functions deploy export-cancel "${common[@]}" --entry-point=export_cancel --trigger-http --no-allow-unauthenticated
run gcloud functions deploy reconcile-exports "${common[@]}" --entry-point=reconcile_exports --trigger-http --no-allow-unauthenticated
run gcloud scheduler jobs create http sceneflow-reconcile --project="$PROJECT" --location="$REGION" \
  --schedule="*/5 * * * *" --http-method=POST --uri="$API_BASE/reconcile-exports" \
  --oidc-service-account-email="$FN_SA"
run gcloud functions deploy dispatch-export "${common[@]}" --entry-point=dispatch_export --trigger-topic="$TOPIC" --retry
# One Eventarc trigger per bucket: the same entry point serves the input and the output bucket.
for b in "$IN" "$OUT"; do
  name=on-finalized-$([[ $b == "$IN" ]] && echo input || echo output)
  run gcloud functions deploy "$name" "${common[@]}" --entry-point=on_object_finalized \
    --trigger-event-filters="type=google.cloud.storage.object.v1.finalized" --trigger-event-filters="bucket=$b" --retry
done

# Schema: Alembic migrations through the Cloud SQL connector, as the deployer's IAM database user
# (DB_MIGRATE_USER: your Google account email), with the project's venv.
run env INSTANCE_CONNECTION_NAME="$INSTANCE" DB_IAM_AUTH=true DB_USER="${DB_MIGRATE_USER:?set DB_MIGRATE_USER}" \
  "$ROOT/.venv/bin/python" -m shared.db
[[ -n "${BUNDLE_DIR:-}" ]] || rm -rf "$BUNDLE"
