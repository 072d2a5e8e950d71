"""dispatch_export of functions/main.py on a service whose launcher records instead of rendering.

The load test's duplicate-execution check delivers every published message twice to this
(python -m infra.local.gateway --source tests/load/dispatch_main.py --functions dispatch_export)
and counts the "render execution started" log lines per job. Settings come from the environment.
"""
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from shared import bootstrap  # noqa: E402
from shared.config import get_settings  # noqa: E402
from tests.fakes import RecordingLauncher  # noqa: E402

bootstrap.use_service(bootstrap.build_service(get_settings(), launcher=RecordingLauncher()))

from functions.main import dispatch_export  # noqa: E402,F401
