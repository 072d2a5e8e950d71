# SceneFlow Export on Google Cloud: every resource (README: Deploying with Terraform).
#   infra/bundle.sh --zip .local/functions-bundle.zip
#   terraform -chdir=infra/terraform apply -var project_id=P -var render_image=IMAGE

locals {
  input_bucket  = coalesce(var.input_bucket_name, "${var.project_id}-sceneflow-input")
  output_bucket = coalesce(var.output_bucket_name, "${var.project_id}-sceneflow-output")
  parts_ttl_days = 2 # shared/artifacts.py PARTS_TTL_DAYS
  # the buckets' CORS rule: shared/cors.py BUCKET_RULES and MAX_AGE_S (tests/unit/test_cors_agree.py)
  cors = {
    input           = { method = ["PUT"], response_header = ["Content-Type", "x-goog-content-length-range"] }
    output          = { method = ["GET", "HEAD"], response_header = ["Content-Type", "Content-Length", "Content-Range", "Content-Disposition", "Accept-Ranges", "Range"] }
    max_age_seconds = 3600
  }
  api_base      = "https://${var.region}-${var.project_id}.cloudfunctions.net"
  instance_connection_name = (var.create_sql_instance ?
    google_sql_database_instance.main[0].connection_name : var.existing_instance_connection_name)
  sa = {
    api      = google_service_account.api.email
    dispatch = google_service_account.dispatch.email
    render   = google_service_account.render.email
    invoker  = google_service_account.invoker.email
  }
  common_env = {
    GOOGLE_CLOUD_PROJECT     = var.project_id
    GOOGLE_CLOUD_REGION      = var.region
    EXPORT_INPUT_BUCKET      = local.input_bucket
    EXPORT_OUTPUT_BUCKET     = local.output_bucket
    EXPORT_JOBS_TOPIC        = var.jobs_topic
    EXPORT_EVENTS_TOPIC      = var.events_topic
    RENDER_JOB_NAME          = google_cloud_run_v2_job.render.name
    RENDER_STITCH_JOB_NAME   = google_cloud_run_v2_job.stitch.name
    INSTANCE_CONNECTION_NAME = local.instance_connection_name
    DB_NAME                  = var.database_name
    DB_IAM_AUTH              = "true"
    EXPORT_API_BASE          = local.api_base
    EXPORT_COMPLETE_URL      = "${local.api_base}/export-complete"
    EXPORT_STATUS_URL        = "${local.api_base}/export-status"
    EXPORT_AUTH              = var.client_auth
    EXPORT_OIDC_ISSUER       = var.oidc_issuer
    EXPORT_OIDC_AUDIENCE     = var.oidc_audience
    EXPORT_CORS_ORIGINS      = join(",", var.cors_origins) # the client functions' CORS (shared/cors.py)
  }
  # name => entry point, account, trigger (http | bucket name), public (no IAM), worker-token secret
  functions = {
    "export-start"        = { entry = "export_start", sa = "api", bucket = null, public = false, secret = true }
    "export-status"       = { entry = "export_status", sa = "api", bucket = null, public = false, secret = true }
    "export-cancel"       = { entry = "export_cancel", sa = "api", bucket = null, public = false, secret = true }
    "export-list"         = { entry = "export_list", sa = "api", bucket = null, public = false, secret = true }
    "export-complete"     = { entry = "export_complete", sa = "api", bucket = null, public = true, secret = true }
    "reconcile-exports"   = { entry = "reconcile_exports", sa = "api", bucket = null, public = false, secret = true }
    "dispatch-export"     = { entry = "dispatch_export", sa = "dispatch", bucket = null, public = false, secret = false }
    # webhooks: the database only (read the job, record attempts), like the dispatcher's account
    "deliver-webhook"       = { entry = "deliver_webhook", sa = "dispatch", bucket = null, public = false, secret = false }
    "export-webhook-secret" = { entry = "export_webhook_secret", sa = "api", bucket = null, public = false, secret = true }
    "on-finalized-input"  = { entry = "on_object_finalized", sa = "api", bucket = local.input_bucket, public = false, secret = true }
    "on-finalized-output" = { entry = "on_object_finalized", sa = "api", bucket = local.output_bucket, public = false, secret = true }
  }
}

data "google_project" "this" {}

data "google_storage_project_service_account" "gcs" {}

resource "google_project_service" "apis" {
  for_each = toset(["run.googleapis.com", "cloudfunctions.googleapis.com", "cloudbuild.googleapis.com",
    "eventarc.googleapis.com", "pubsub.googleapis.com", "sqladmin.googleapis.com", "secretmanager.googleapis.com",
    "artifactregistry.googleapis.com", "cloudscheduler.googleapis.com", "iamcredentials.googleapis.com",
    "logging.googleapis.com", "monitoring.googleapis.com", "storage.googleapis.com"])
  service            = each.value
  disable_on_destroy = false
}

# ---------------------------------------------------------------------------------------------
# Storage: inputs (browser PUT uploads through signed URLs) and outputs, both deleted after N days

resource "google_storage_bucket" "input" {
  name                        = local.input_bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  dynamic "cors" { # none when var.cors_origins is empty (no browser origin)
    for_each = length(var.cors_origins) > 0 ? [local.cors.input] : []
    content {
      origin          = var.cors_origins
      method          = cors.value.method
      response_header = cors.value.response_header
      max_age_seconds = local.cors.max_age_seconds
    }
  }
  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      age = var.input_retention_days
    }
  }
}

resource "google_storage_bucket" "output" {
  name                        = local.output_bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  dynamic "cors" { # GET/HEAD of the video, poster and captions (a <track> is fetched with CORS)
    for_each = length(var.cors_origins) > 0 ? [local.cors.output] : []
    content {
      origin          = var.cors_origins
      method          = cors.value.method
      response_header = cors.value.response_header
      max_age_seconds = local.cors.max_age_seconds
    }
  }
  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      age = var.output_retention_days
    }
  }
  # a parallel render's pieces (issue 19) are deleted when the export succeeds; this rule removes
  # what failed or canceled exports leave (shared/artifacts.py PARTS_TTL_DAYS)
  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      age            = local.parts_ttl_days
      matches_prefix = ["parts/"]
    }
  }
}

# the functions' source archives (infra/bundle.sh --zip)
resource "google_storage_bucket" "sources" {
  name                        = "${var.project_id}-sceneflow-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      num_newer_versions = 5
      with_state         = "ARCHIVED"
    }
  }
  versioning {
    enabled = true
  }
}

resource "google_storage_bucket_object" "functions_source" {
  name   = "functions/${filemd5(var.functions_bundle_zip)}.zip"
  bucket = google_storage_bucket.sources.name
  source = var.functions_bundle_zip
}

# ---------------------------------------------------------------------------------------------
# Pub/Sub: jobs topic -> push subscription -> dispatch-export, dead-lettered after N attempts

resource "google_pubsub_topic" "jobs" {
  name                       = var.jobs_topic
  message_retention_duration = "86400s"
}

resource "google_pubsub_topic" "dead_letter" {
  name                       = "${var.jobs_topic}-dead-letter"
  message_retention_duration = "604800s"
}

resource "google_pubsub_subscription" "dispatch" {
  name                 = "${var.jobs_topic}-dispatch"
  topic                = google_pubsub_topic.jobs.id
  ack_deadline_seconds = 60
  push_config {
    # functions-framework turns a Pub/Sub push into the messagePublished CloudEvent; the path names the topic
    push_endpoint = "${google_cloudfunctions2_function.fn["dispatch-export"].url}/projects/${var.project_id}/topics/${var.jobs_topic}"
    oidc_token {
      service_account_email = local.sa.invoker
      audience              = google_cloudfunctions2_function.fn["dispatch-export"].url
    }
  }
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }
  expiration_policy {
    ttl = ""
  }
}

# dead-lettered messages wait here for inspection and replay (README: Runbook)
resource "google_pubsub_subscription" "dead_letter_hold" {
  name                       = "${var.jobs_topic}-dead-letter-hold"
  topic                      = google_pubsub_topic.dead_letter.id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60
  expiration_policy {
    ttl = ""
  }
}

# the Pub/Sub service agent forwards undeliverable messages and mints push OIDC tokens
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_subscription_iam_member" "dispatch_subscriber" {
  subscription = google_pubsub_subscription.dispatch.id
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_service_account_iam_member" "pubsub_token_creator" {
  service_account_id = google_service_account.invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

# ---------------------------------------------------------------------------------------------
# Pub/Sub: job events (webhooks) -> push subscription -> deliver-webhook, exponential backoff,
# dead-lettered after var.webhook_max_delivery_attempts (DESIGN §4 "Webhooks")

resource "google_pubsub_topic" "events" {
  name                       = var.events_topic
  message_retention_duration = "86400s"
}

resource "google_pubsub_topic" "events_dead_letter" {
  name                       = "${var.events_topic}-dead-letter"
  message_retention_duration = "604800s"
}

resource "google_pubsub_subscription" "deliver" {
  name                 = "${var.events_topic}-deliver"
  topic                = google_pubsub_topic.events.id
  ack_deadline_seconds = 60
  push_config {
    push_endpoint = "${google_cloudfunctions2_function.fn["deliver-webhook"].url}/projects/${var.project_id}/topics/${var.events_topic}"
    oidc_token {
      service_account_email = local.sa.invoker
      audience              = google_cloudfunctions2_function.fn["deliver-webhook"].url
    }
  }
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.events_dead_letter.id
    max_delivery_attempts = var.webhook_max_delivery_attempts
  }
  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "events_dead_letter_hold" {
  name                       = "${var.events_topic}-dead-letter-hold"
  topic                      = google_pubsub_topic.events_dead_letter.id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60
  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_topic_iam_member" "events_dead_letter_publisher" {
  topic  = google_pubsub_topic.events_dead_letter.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_subscription_iam_member" "deliver_subscriber" {
  subscription = google_pubsub_subscription.deliver.id
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

# every function that applies a transition publishes its event (dispatch: a failed launch re-queues)
resource "google_pubsub_topic_iam_member" "events_publisher" {
  for_each = toset(["api", "dispatch"])
  topic    = google_pubsub_topic.events.id
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${local.sa[each.value]}"
}

# ---------------------------------------------------------------------------------------------
# Cloud SQL for PostgreSQL (or an existing instance), IAM database users

resource "google_sql_database_instance" "main" {
  count               = var.create_sql_instance ? 1 : 0
  name                = "${var.name_prefix}-pg"
  database_version    = "POSTGRES_17"
  region              = var.region
  deletion_protection = true
  settings {
    tier              = var.sql_tier
    availability_type = "ZONAL"
    ip_configuration {
      # the Cloud SQL connector (IAM-authorized, TLS) connects to the public IP; no authorized networks
      ipv4_enabled = true
      ssl_mode     = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    }
    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
    }
    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_sql_database" "main" {
  count    = var.create_sql_instance ? 1 : 0
  name     = var.database_name
  instance = google_sql_database_instance.main[0].name
}

resource "google_sql_user" "iam" {
  for_each = var.create_sql_instance ? { api = local.sa.api, dispatch = local.sa.dispatch } : {}
  name     = trimsuffix(each.value, ".gserviceaccount.com")
  instance = google_sql_database_instance.main[0].name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

# ---------------------------------------------------------------------------------------------
# Service accounts and their least roles (README lists them)

resource "google_service_account" "api" {
  account_id   = "${var.name_prefix}-api"
  display_name = "SceneFlow API functions (start, status, cancel, complete, reconcile, finalize)"
}

resource "google_service_account" "dispatch" {
  account_id   = "${var.name_prefix}-dispatch"
  display_name = "SceneFlow dispatcher (claims jobs, starts render executions)"
}

resource "google_service_account" "render" {
  account_id   = "${var.name_prefix}-render"
  display_name = "SceneFlow render job"
}

resource "google_service_account" "invoker" {
  account_id   = "${var.name_prefix}-invoker"
  display_name = "SceneFlow invoker (Pub/Sub push, Cloud Scheduler, Eventarc)"
}

resource "google_project_iam_member" "sql" {
  for_each = { for pair in setproduct(["api", "dispatch"], ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]) :
  "${pair[0]}-${pair[1]}" => { sa = pair[0], role = pair[1] } }
  project = var.project_id
  role    = each.value.role
  member  = "serviceAccount:${local.sa[each.value.sa]}"
}

resource "google_storage_bucket_iam_member" "api_input" {
  bucket = google_storage_bucket.input.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${local.sa.api}"
}

resource "google_storage_bucket_iam_member" "api_output" {
  bucket = google_storage_bucket.output.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${local.sa.api}"
}

resource "google_storage_bucket_iam_member" "render_input" {
  bucket = google_storage_bucket.input.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${local.sa.render}"
}

# objectCreator writes (create-only: if_generation_match=0); objectViewer lets a retried task see
# that its video is already there instead of failing on the stat.
resource "google_storage_bucket_iam_member" "render_output" {
  for_each = toset(["roles/storage.objectCreator", "roles/storage.objectViewer"])
  bucket   = google_storage_bucket.output.name
  role     = each.value
  member   = "serviceAccount:${local.sa.render}"
}

resource "google_pubsub_topic_iam_member" "api_publisher" {
  topic  = google_pubsub_topic.jobs.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${local.sa.api}"
}

# keyless V4 signed URLs: signBlob as itself
resource "google_service_account_iam_member" "api_sign_blob" {
  service_account_id = google_service_account.api.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${local.sa.api}"
}

# run the job with overrides, read and cancel its executions; act as the job's account
resource "google_cloud_run_v2_job_iam_member" "launchers" {
  for_each = toset(["api", "dispatch"])
  name     = google_cloud_run_v2_job.render.name
  location = var.region
  role     = "roles/run.developer"
  member   = "serviceAccount:${local.sa[each.value]}"
}

resource "google_cloud_run_v2_job_iam_member" "stitch_launchers" {
  for_each = toset(["api", "dispatch"])
  name     = google_cloud_run_v2_job.stitch.name
  location = var.region
  role     = "roles/run.developer"
  member   = "serviceAccount:${local.sa[each.value]}"
}

resource "google_service_account_iam_member" "act_as_render" {
  for_each           = toset(["api", "dispatch"])
  service_account_id = google_service_account.render.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${local.sa[each.value]}"
}

resource "google_secret_manager_secret_iam_member" "worker_token" {
  for_each  = toset(["api", "render"])
  secret_id = google_secret_manager_secret.worker_token.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${local.sa[each.value]}"
}

# Eventarc: the trigger account receives events; Cloud Storage's agent publishes them
resource "google_project_iam_member" "invoker_event_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${local.sa.invoker}"
}

resource "google_project_iam_member" "gcs_agent_publisher" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# ---------------------------------------------------------------------------------------------
# Worker token (Secret Manager) and the image repository

resource "random_password" "worker_token" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret" "worker_token" {
  secret_id = "${var.name_prefix}-worker-token"
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "worker_token" {
  secret      = google_secret_manager_secret.worker_token.id
  secret_data = random_password.worker_token.result
}

resource "google_artifact_registry_repository" "images" {
  location      = var.region
  repository_id = var.name_prefix
  format        = "DOCKER"
  description   = "SceneFlow render images"
  depends_on    = [google_project_service.apis]
}

# ---------------------------------------------------------------------------------------------
# The render job: one execution per export (EXPORT_JOB_ID is set per execution by the dispatcher)

resource "google_cloud_run_v2_job" "render" {
  name                = "${var.name_prefix}-render"
  location            = var.region
  deletion_protection = false
  template {
    task_count = 1
    # 0: as many tasks at once as the quota allows. RunJob cannot override parallelism and an
    # execution's must not exceed its task count, so a bound here would break the one-task runs;
    # a parallel export's K (at most RENDER_MAX_PARTS) bounds it instead (DESIGN §9)
    parallelism = 0
    template {
      service_account = local.sa.render
      timeout         = "${var.render_task_timeout_s}s"
      max_retries     = var.render_max_retries
      containers {
        image = var.render_image
        resources {
          limits = {
            cpu    = var.render_cpu
            memory = var.render_memory
          }
        }
        env {
          name  = "EXPORT_INPUT_BUCKET"
          value = local.input_bucket
        }
        env {
          name  = "EXPORT_OUTPUT_BUCKET"
          value = local.output_bucket
        }
        env {
          name  = "EXPORT_API_BASE"
          value = local.api_base
        }
        env {
          name  = "EXPORT_COMPLETE_URL"
          value = "${local.api_base}/export-complete"
        }
        env {
          name  = "RENDER_MAX_RETRIES"
          value = tostring(var.render_max_retries)
        }
        dynamic "env" {
          for_each = local.render_env
          content {
            name  = env.key
            value = env.value
          }
        }
        env {
          name = "EXPORT_WORKER_TOKEN"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.worker_token.secret_id
              version = "latest"
            }
          }
        }
      }
    }
  }
  depends_on = [google_secret_manager_secret_iam_member.worker_token, google_project_service.apis]
}

# The stitch job (issue 19): joins the parts of a parallel export with its audio; the same image,
# account and settings as the render job, its own size and time limit, one task per execution
resource "google_cloud_run_v2_job" "stitch" {
  name                = "${var.name_prefix}-stitch"
  location            = var.region
  deletion_protection = false
  template {
    task_count  = 1
    parallelism = 1
    template {
      service_account = local.sa.render
      timeout         = "${var.render_stitch_task_timeout_s}s"
      max_retries     = var.render_max_retries
      containers {
        image = var.render_image
        resources {
          limits = {
            cpu    = var.render_stitch_cpu
            memory = var.render_stitch_memory
          }
        }
        env {
          name  = "EXPORT_INPUT_BUCKET"
          value = local.input_bucket
        }
        env {
          name  = "EXPORT_OUTPUT_BUCKET"
          value = local.output_bucket
        }
        env {
          name  = "EXPORT_API_BASE"
          value = local.api_base
        }
        env {
          name  = "EXPORT_COMPLETE_URL"
          value = "${local.api_base}/export-complete"
        }
        env {
          name  = "RENDER_MAX_RETRIES"
          value = tostring(var.render_max_retries)
        }
        dynamic "env" {
          for_each = local.stitch_env
          content {
            name  = env.key
            value = env.value
          }
        }
        env {
          name = "EXPORT_WORKER_TOKEN"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.worker_token.secret_id
              version = "latest"
            }
          }
        }
      }
    }
  }
  depends_on = [google_secret_manager_secret_iam_member.worker_token, google_project_service.apis]
}

# ---------------------------------------------------------------------------------------------
# The functions (gen2), all from one source archive

resource "google_cloudfunctions2_function" "fn" {
  for_each = local.functions
  name     = each.key
  location = var.region
  build_config {
    runtime     = "python311"
    entry_point = each.value.entry
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }
  service_config {
    max_instance_count               = var.functions_max_instances
    available_memory                 = "512M"
    timeout_seconds                  = 60
    service_account_email            = local.sa[each.value.sa]
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    environment_variables            = merge(local.common_env, local.functions_limits_env, { DB_USER = trimsuffix(local.sa[each.value.sa], ".gserviceaccount.com") })
    dynamic "secret_environment_variables" {
      for_each = each.value.secret ? [1] : []
      content {
        key        = "EXPORT_WORKER_TOKEN"
        project_id = var.project_id
        secret     = google_secret_manager_secret.worker_token.secret_id
        version    = "latest"
      }
    }
  }
  dynamic "event_trigger" {
    for_each = each.value.bucket == null ? [] : [each.value.bucket]
    content {
      trigger_region        = var.region
      event_type            = "google.cloud.storage.object.v1.finalized"
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = local.sa.invoker
      event_filters {
        attribute = "bucket"
        value     = event_trigger.value
      }
    }
  }
  depends_on = [google_project_service.apis, google_secret_manager_secret_iam_member.worker_token,
  google_project_iam_member.gcs_agent_publisher, google_project_iam_member.invoker_event_receiver]
}

# who may call which function (gen2 functions are Cloud Run services: run.invoker)
resource "google_cloud_run_service_iam_member" "invoker" {
  for_each = toset(["dispatch-export", "deliver-webhook", "reconcile-exports", "on-finalized-input", "on-finalized-output"])
  location = var.region
  service  = google_cloudfunctions2_function.fn[each.value].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${local.sa.invoker}"
}

# export-complete authenticates the render job by the worker token (constant-time compare), not IAM
resource "google_cloud_run_service_iam_member" "complete_public" {
  location = var.region
  service  = google_cloudfunctions2_function.fn["export-complete"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# client_access = "public": browsers call the client functions with ID tokens; EXPORT_AUTH is the gate
resource "google_cloud_run_service_iam_member" "clients_public" {
  for_each = var.client_access == "public" ? toset(["export-start", "export-status", "export-cancel", "export-list"]) : toset([])
  location = var.region
  service  = google_cloudfunctions2_function.fn[each.value].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
  lifecycle {
    precondition {
      condition     = trimspace(var.client_auth) != "open"
      error_message = "client_access = \"public\" needs client_auth (server_key, id_token), not open."
    }
  }
}

# ---------------------------------------------------------------------------------------------
# Cloud Scheduler: reconcile-exports

resource "google_cloud_scheduler_job" "reconcile" {
  name        = "${var.name_prefix}-reconcile"
  region      = var.region
  schedule    = var.reconcile_schedule
  time_zone   = "Etc/UTC"
  description = "Re-publish stale queued exports, fail dead executions, expire uploads"
  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.fn["reconcile-exports"].url
    oidc_token {
      service_account_email = local.sa.invoker
      audience              = google_cloudfunctions2_function.fn["reconcile-exports"].url
    }
  }
  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------------------------------------
# Log-based metrics and alert policies

resource "google_logging_metric" "failed_exports" {
  name        = "${var.name_prefix}_failed_exports"
  description = "SceneFlow exports that ended failed"
  filter      = "jsonPayload.message=\"export failed\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_logging_metric" "stuck_exports" {
  name        = "${var.name_prefix}_stuck_exports"
  description = "SceneFlow exports failed by reconcile (stale or dead execution)"
  filter      = "jsonPayload.message=\"reconcile failed a stale export\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_logging_metric" "publish_failures" {
  name        = "${var.name_prefix}_publish_failures"
  description = "SceneFlow jobs left queued because publishing failed"
  filter      = "jsonPayload.message=\"publish failed; job stays queued\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_monitoring_alert_policy" "dead_lettered" {
  display_name          = "SceneFlow: job messages dead-lettered"
  combiner              = "OR"
  notification_channels = var.notification_channels
  documentation {
    content   = "Job messages could not be delivered to dispatch-export ${var.max_delivery_attempts} times and went to ${google_pubsub_topic.dead_letter.name}. README: Runbook, replay dead-lettered messages."
    mime_type = "text/markdown"
  }
  conditions {
    display_name = "dead-lettered messages > 0"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dispatch.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/dead_letter_message_count\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_DELTA"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "failed_exports" {
  display_name          = "SceneFlow: exports failing"
  combiner              = "OR"
  notification_channels = var.notification_channels
  documentation {
    content   = "More than ${var.failed_exports_threshold} exports failed in 15 minutes. README: Runbook, read a failed export's logs."
    mime_type = "text/markdown"
  }
  conditions {
    display_name = "failed exports in 15 min"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.failed_exports.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.failed_exports_threshold
      duration        = "0s"
      aggregations {
        alignment_period     = "900s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "stuck_exports" {
  display_name          = "SceneFlow: stuck exports"
  combiner              = "OR"
  notification_channels = var.notification_channels
  documentation {
    content   = "reconcile-exports failed exports whose execution died or never started. README: Runbook."
    mime_type = "text/markdown"
  }
  conditions {
    display_name = "stuck exports > 0"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.stuck_exports.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "900s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
}
