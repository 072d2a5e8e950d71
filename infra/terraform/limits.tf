# README's Limits table: each setting goes to the processes that read it (tests/unit/test_limits_agree.py).
# Only variables are read here, so that tests/static can evaluate these locals with `terraform console`.

locals {
  # RENDER_MEMORY as Cloud Run takes it (NGi or NMi, validated), in bytes for the task's preflight
  memory_units        = { Gi = 1073741824, Mi = 1048576 }
  render_memory_bytes = tonumber(substr(var.render_memory, 0, length(var.render_memory) - 2)) * local.memory_units[substr(var.render_memory, -2, -1)]
  stitch_memory_bytes = tonumber(substr(var.render_stitch_memory, 0, length(var.render_stitch_memory) - 2)) * local.memory_units[substr(var.render_stitch_memory, -2, -1)]
  # EXPORT_MAX_*: the functions and the render job both read some of them
  limits_env = { for name, value in var.export_limits : name => tostring(value) }
  # the functions only: signed URL lifetimes, the upload deadline, each execution's task timeout;
  # the most parts of a parallel export (issue 19: they launch the executions; the render job too)
  functions_limits_env = merge(local.limits_env, {
    EXPORT_UPLOAD_URL_TTL_S      = tostring(var.export_upload_url_ttl_s)
    EXPORT_DOWNLOAD_URL_TTL_S    = tostring(var.export_download_url_ttl_s)
    EXPORT_UPLOAD_TTL_S          = tostring(var.export_upload_ttl_s)
    RENDER_TASK_TIMEOUT_S        = tostring(var.render_task_timeout_s)
    RENDER_STITCH_TASK_TIMEOUT_S = tostring(var.render_stitch_task_timeout_s)
    RENDER_MAX_PARTS             = tostring(var.render_max_parts)
    RENDER_PARALLEL_AFTER_S      = tostring(var.render_parallel_after_s)
    RENDER_MIN_PART_S            = tostring(var.render_min_part_s)
  })
  # the render job: its memory and vCPUs, preflight and FFmpeg's time limit; the most parts of a
  # parallel export (issue 19: it asks for a handoff to one, render_job/handoff.py)
  render_env = merge(local.limits_env, {
    RENDER_MAX_PARTS            = tostring(var.render_max_parts)
    RENDER_PARALLEL_AFTER_S     = tostring(var.render_parallel_after_s) # the same cuts as dispatch's
    RENDER_MIN_PART_S           = tostring(var.render_min_part_s)
    RENDER_MEMORY_BYTES         = tostring(local.render_memory_bytes)
    RENDER_VCPUS                = var.render_cpu # the task's allocation, for its cost (shared.cost)
    RENDER_TASK_TIMEOUT_S       = tostring(var.render_task_timeout_s)
    RENDER_TIMEOUT_BASE_S       = tostring(var.render_timeout_base_s)
    RENDER_TIMEOUT_PER_OUTPUT_S = tostring(var.render_timeout_per_output_s)
    RENDER_MAX_IMAGE_PIXELS     = tostring(var.render_max_image_pixels)
    RENDER_MAX_DECODE_PIXELS    = tostring(var.render_max_decode_pixels)
    RENDER_MAX_MEDIA_S          = tostring(var.render_max_media_s)
  })
  # the stitch job (issue 19): the render job's settings, its own size and time limit
  stitch_env = merge(local.render_env, {
    RENDER_MEMORY_BYTES   = tostring(local.stitch_memory_bytes)
    RENDER_VCPUS          = var.render_stitch_cpu
    RENDER_TASK_TIMEOUT_S = tostring(var.render_stitch_task_timeout_s)
  })
}
