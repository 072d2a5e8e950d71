"""`python -m render_job`: render the export named by EXPORT_JOB_ID (see render_job.job)."""
from render_job.job import main

raise SystemExit(main())
