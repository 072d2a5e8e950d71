"""Test doubles shared by the render tests."""
from __future__ import annotations


class FakeReporter:
    """Records the render job's reports (running/succeeded/failed) as render_job.reporter.Reporter
    would send them; `calls` is the list of report bodies, in order."""

    def __init__(self):
        self.calls = []
        self.rejected = False

    def running(self, stage, progress, force=False):
        self.calls.append({"status": "running", "stage": stage, "progress": progress})
        return True

    def succeeded(self, output):
        self.calls.append({"status": "succeeded", "output": output})
        return True

    def failed(self, code, message):
        self.calls.append({"status": "failed", "error": {"code": code, "message": message}})
        return True

    @property
    def final(self):
        """The last report, or None."""
        return self.calls[-1] if self.calls else None
