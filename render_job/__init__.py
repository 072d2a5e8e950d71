"""SceneFlow Export render job: spec -> probe -> plan -> one FFmpeg run (long: scene chunks) -> uploads (see job.py)."""
