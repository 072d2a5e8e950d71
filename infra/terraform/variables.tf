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
  description = "Origins allowed to PUT uploads to signed URLs from a browser."
  type        = list(string)
  default     = ["*"]
}

variable "jobs_topic" {
  description = "Pub/Sub topic of export jobs (EXPORT_JOBS_TOPIC)."
  type        = string
  default     = "export-jobs"
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
  description = "Render job image (REGION-docker.pkg.dev/PROJECT/REPO/render:TAG), pushed after the repository exists."
  type        = string
}

variable "render_cpu" {
  description = "CPU of a render task."
  type        = string
  default     = "4"
}

variable "render_memory" {
  description = "Memory of a render task, in Gi (README: Limits); the task gets it as RENDER_MEMORY_BYTES too."
  type        = string
  default     = "8Gi"
  validation {
    condition     = can(regex("^[0-9]+Gi$", var.render_memory))
    error_message = "render_memory must be a whole number of Gi, e.g. 8Gi."
  }
}

variable "render_task_timeout_s" {
  description = "Task timeout of a render (seconds; also RENDER_TASK_TIMEOUT_S of the functions)."
  type        = number
  default     = 3600
}

variable "render_timeout_per_output_s" {
  description = "FFmpeg time limit per second of output (RENDER_TIMEOUT_PER_OUTPUT_S): 60 + this x 1800 s fits the task timeout."
  type        = number
  default     = 1.5
}

variable "export_limits" {
  description = "The EXPORT_MAX_* limits (README: Limits), set on the functions and the render job alike."
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
