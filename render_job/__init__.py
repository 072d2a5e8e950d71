"""SceneFlow Export render job: spec -> probe -> plan -> one FFmpeg run -> uploads (see job.py)."""
