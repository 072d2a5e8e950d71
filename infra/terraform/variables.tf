variable "project_id" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Region of every regional resource (functions, job, buckets, registry, SQL, scheduler)."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of resource names (service accounts, job, repository, secret, metrics)."
  type        = string
  default     = "sceneflow"
}

variable "input_bucket_name" {
  description = "Input bucket (uploads, specs); default PROJECT-sceneflow-input."
  type        = string
  default     = null
}

variable "output_bucket_name" {
  description = "Output bucket (exports/{jobId}/...); default PROJECT-sceneflow-output."
  type        = string
  default     = null
}

variable "input_retention_days" {
  description = "Inputs are deleted this many days after upload."
  type        = number
  default     = 7
}

variable "output_retention_days" {
  description = "Outputs are deleted this many days after the render."
  type        = number
  default     = 30
}

variable "cors_origins" {
  description = "EXPORT_CORS_ORIGINS: the pages' origins (scheme://host[:port], exact) allowed to call the client functions and use both buckets' signed URLs from a browser; [\"*\"] = any; [] (default) = none."
  type        = list(string)
  default     = []
  validation {
    condition     = contains(var.cors_origins, "*") ? length(var.cors_origins) == 1 : alltrue([for o in var.cors_origins : can(regex("^https?://([a-z0-9]([a-z0-9.-]*[a-z0-9])?|\\[[0-9a-f:.]+\\])(:[1-9][0-9]{0,4})?$", o)) && !can(regex("^(https://.*:443|http://.*:80)$", o)) && try(tonumber(regex(":([0-9]+)$", o)[0]) <= 65535, true)])
    error_message = "cors_origins: exact origins scheme://host[:port] (lower case, no path, no trailing slash, port 1-65535 without leading zeros or the default 80/443), or [\"*\"] alone."
  }
}

variable "jobs_topic" {
  description = "Pub/Sub topic of export jobs (EXPORT_JOBS_TOPIC)."
  type        = string
  default     = "export-jobs"
}

variable "events_topic" {
  description = "Pub/Sub topic of job events, delivered as signed webhooks (EXPORT_EVENTS_TOPIC)."
  type        = string
  default     = "export-events"
}

variable "webhook_max_delivery_attempts" {
  description = "Deliveries of a job event to deliver-webhook (one webhook attempt each) before it is dead-lettered (5..100)."
  type        = number
  default     = 8
}

variable "max_delivery_attempts" {
  description = "Deliveries of a job message to dispatch-export before it is dead-lettered (5..100)."
  type        = number
  default     = 10
}

variable "create_sql_instance" {
  description = "Create a Cloud SQL for PostgreSQL instance; false: use existing_instance_connection_name."
  type        = bool
  default     = true
}

variable "existing_instance_connection_name" {
  description = "An existing instance (project:region:instance) when create_sql_instance is false."
  type        = string
  default     = ""
}

variable "sql_tier" {
  description = "Machine tier of the created Cloud SQL instance."
  type        = string
  default     = "db-custom-1-3840"
}

variable "database_name" {
  description = "Database (DB_NAME)."
  type        = string
  default     = "sceneflow"
}

variable "render_image" {
  description = "Render job image (REGION-docker.pkg.dev/PROJECT/REPO/render:TAG): built by infra/image.sh (make image IMAGE=...), as deploy.sh builds it, and pushed after the repository exists."
  type        = string
}

variable "render_cpu" {
  description = "vCPUs of a render task, a number as infra/deploy.sh's RENDER_CPU; the task gets it as RENDER_VCPUS too (its cost)."
  type        = string
  default     = "4"
  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?$", var.render_cpu))
    error_message = "render_cpu must be a number of vCPUs (e.g. 4 or 0.5), not millicores."
  }
}

variable "render_memory" {
  description = "Memory of a render task, NGi or NMi as infra/deploy.sh's RENDER_MEMORY (README: Limits); the task gets it as RENDER_MEMORY_BYTES too."
  type        = string
  default     = "8Gi"
  validation {
    condition     = can(regex("^[0-9]+(Gi|Mi)$", var.render_memory))
    error_message = "render_memory must be a whole number of Gi or Mi (e.g. 8Gi, 6144Mi)."
  }
}

variable "render_task_timeout_s" {
  description = "Task timeout of each attempt of a render (seconds; also RENDER_TASK_TIMEOUT_S of the functions)."
  type        = number
  default     = 3600
}

variable "render_timeout_base_s" {
  description = "FFmpeg time limit of one render, fixed part (RENDER_TIMEOUT_BASE_S, seconds)."
  type        = number
  default     = 60
}

variable "render_timeout_per_output_s" {
  description = "FFmpeg time limit per second of output (RENDER_TIMEOUT_PER_OUTPUT_S): 60 + this x 1800 s fits the task timeout."
  type        = number
  default     = 1.5
}

variable "render_max_image_pixels" {
  description = "Pixels of any still image, from its header (RENDER_MAX_IMAGE_PIXELS; the render job's preflight)."
  type        = number
  default     = 400000000
}

variable "render_max_decode_pixels" {
  description = "Pixels of a non-JPEG still, decoded at full size (RENDER_MAX_DECODE_PIXELS; the render job's preflight)."
  type        = number
  default     = 50000000
}

variable "render_max_media_s" {
  description = "Length of any clip, narration or music file, seconds (RENDER_MAX_MEDIA_S; the render job's preflight)."
  type        = number
  default     = 3600
}

# Parallel exports (issue 19): the parts' cap and the stitch job's size and time limit (README: Limits)
variable "render_max_parts" {
  description = "The most tasks (parts) of one render execution (RENDER_MAX_PARTS, read by the functions that launch it and by the render job that asks for a handoff; at most 200)."
  type        = number
  default     = 16
}

variable "render_parallel_after_s" {
  description = "An export planned at least this long renders in parts, seconds (RENDER_PARALLEL_AFTER_S; the functions, the render and stitch jobs get the same value)."
  type        = number
  default     = 120
}

variable "render_min_part_s" {
  description = "The shortest part of a parallel export, seconds of output (RENDER_MIN_PART_S; the functions, the render and stitch jobs get the same value)."
  type        = number
  default     = 10
}

variable "render_stitch_cpu" {
  description = "vCPUs of the stitch task, as infra/deploy.sh's RENDER_STITCH_CPU; the task gets it as RENDER_VCPUS too."
  type        = string
  default     = "2"
  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?$", var.render_stitch_cpu))
    error_message = "render_stitch_cpu must be a number of vCPUs (e.g. 2 or 0.5), not millicores."
  }
}

variable "render_stitch_memory" {
  description = "Memory of the stitch task, NGi or NMi as infra/deploy.sh's RENDER_STITCH_MEMORY; the task gets it as RENDER_MEMORY_BYTES too."
  type        = string
  default     = "6Gi"
  validation {
    condition     = can(regex("^[0-9]+(Gi|Mi)$", var.render_stitch_memory))
    error_message = "render_stitch_memory must be a whole number of Gi or Mi (e.g. 6Gi, 6144Mi)."
  }
}

variable "render_stitch_task_timeout_s" {
  description = "Task timeout of each attempt of a stitch (seconds; RENDER_STITCH_TASK_TIMEOUT_S of the functions, RENDER_TASK_TIMEOUT_S of the stitch task)."
  type        = number
  default     = 900
}

variable "export_limits" {
  description = "The EXPORT_MAX_* limits (README: Limits), set on the functions and the render job alike. A key left out takes the code's default (the same value); an unknown key is refused."
  type        = map(number)
  default = {
    EXPORT_MAX_SCENES        = 200
    EXPORT_MAX_TOTAL_S       = 1800
    EXPORT_MAX_ASSETS        = 401
    EXPORT_MAX_ASSET_BYTES   = 524288000
    EXPORT_MAX_JOB_BYTES     = 2147483648
    EXPORT_MAX_OUTPUT_BYTES  = 2147483648
    EXPORT_MAX_BODY_BYTES    = 1000000
    EXPORT_MAX_CAPTION_CHARS = 500
  }
  validation {
    condition = length(setsubtract(keys(var.export_limits), ["EXPORT_MAX_SCENES", "EXPORT_MAX_TOTAL_S",
      "EXPORT_MAX_ASSETS", "EXPORT_MAX_ASSET_BYTES", "EXPORT_MAX_JOB_BYTES", "EXPORT_MAX_OUTPUT_BYTES",
    "EXPORT_MAX_BODY_BYTES", "EXPORT_MAX_CAPTION_CHARS"])) == 0
    error_message = "export_limits takes only EXPORT_MAX_SCENES, EXPORT_MAX_TOTAL_S, EXPORT_MAX_ASSETS, EXPORT_MAX_ASSET_BYTES, EXPORT_MAX_JOB_BYTES, EXPORT_MAX_OUTPUT_BYTES, EXPORT_MAX_BODY_BYTES and EXPORT_MAX_CAPTION_CHARS; unknown: ${join(", ", sort(setsubtract(keys(var.export_limits), ["EXPORT_MAX_SCENES", "EXPORT_MAX_TOTAL_S", "EXPORT_MAX_ASSETS", "EXPORT_MAX_ASSET_BYTES", "EXPORT_MAX_JOB_BYTES", "EXPORT_MAX_OUTPUT_BYTES", "EXPORT_MAX_BODY_BYTES", "EXPORT_MAX_CAPTION_CHARS"])))}."
  }
}

variable "export_upload_url_ttl_s" {
  description = "Lifetime of a signed PUT URL, seconds (EXPORT_UPLOAD_URL_TTL_S; the functions)."
  type        = number
  default     = 900
}

variable "export_download_url_ttl_s" {
  description = "Lifetime of a signed GET URL, seconds (EXPORT_DOWNLOAD_URL_TTL_S; the functions)."
  type        = number
  default     = 900
}

variable "export_upload_ttl_s" {
  description = "An awaiting job fails upload_expired this long after it started, seconds (EXPORT_UPLOAD_TTL_S; the functions)."
  type        = number
  default     = 3600
}

variable "render_max_retries" {
  description = "Retries of a failed render task (0..10)."
  type        = number
  default     = 3
}

variable "functions_bundle_zip" {
  description = "Functions source archive made by `infra/bundle.sh --zip FILE`."
  type        = string
  default     = "../../.local/functions-bundle.zip"
}

variable "functions_max_instances" {
  description = "Max instances of each function."
  type        = number
  default     = 20
}

variable "reconcile_schedule" {
  description = "Cloud Scheduler cron of reconcile-exports."
  type        = string
  default     = "*/5 * * * *"
}

variable "failed_exports_threshold" {
  description = "Alert when more exports than this fail within 15 minutes."
  type        = number
  default     = 3
}

variable "notification_channels" {
  description = "Monitoring notification channel ids of the alert policies."
  type        = list(string)
  default     = []
}

variable "client_auth" {
  description = "EXPORT_AUTH of the functions: server_key, id_token (a list), or open (README: Authenticate). Every deployed function must have it."
  type        = string
  default     = "open"
  validation {
    condition     = length(regexall("^(open|((server_key|id_token|client_token)([ ,]+(server_key|id_token|client_token))*))$", trimspace(var.client_auth))) == 1
    error_message = "client_auth: open, or a list of server_key, id_token, client_token."
  }
}

variable "client_access" {
  description = "Who may invoke export-start/status/cancel: iam (default; the app's backend sends its Google ID token in X-Serverless-Authorization) or public (browsers with ID tokens; client_auth is then the only gate and must not be open)."
  type        = string
  default     = "iam"
  validation {
    condition     = contains(["iam", "public"], var.client_access)
    error_message = "client_access: iam or public."
  }
}

variable "oidc_issuer" {
  description = "EXPORT_OIDC_ISSUER for id_token, e.g. https://securetoken.google.com/PROJECT_ID (Firebase Auth)."
  type        = string
  default     = ""
}

variable "oidc_audience" {
  description = "EXPORT_OIDC_AUDIENCE for id_token, e.g. the Firebase project id."
  type        = string
  default     = ""
}
