output "api_base" {
  description = "Base URL of the functions (EXPORT_API_BASE)."
  value       = local.api_base
}

output "function_urls" {
  description = "URL of each function."
  value       = { for k, f in google_cloudfunctions2_function.fn : k => f.url }
}

output "instance_connection_name" {
  description = "Cloud SQL instance (INSTANCE_CONNECTION_NAME) to migrate with python -m shared.db."
  value       = local.instance_connection_name
}

output "render_job" {
  description = "Cloud Run job name."
  value       = google_cloud_run_v2_job.render.name
}

output "stitch_job" {
  description = "Cloud Run job that joins a parallel export's parts (issue 19)."
  value       = google_cloud_run_v2_job.stitch.name
}

output "artifact_repository" {
  description = "Docker repository for the render image."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "service_accounts" {
  description = "Service account emails by role."
  value       = local.sa
}
