"""The plugin entry point: cheap to import everywhere, an app only where the api-server asks for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, sys, time
began = time.perf_counter()
import every8d.plugin as plugin
imported = time.perf_counter() - began
heavy = sorted(
    m for m in ("fastapi", "starlette", "uvicorn", "pyarrow", "every8d.callbacks.app") if m in sys.modules
)
apps = plugin.Every8dPlugin().fastapi_apps
print(json.dumps({"heavy": heavy, "prefix": apps[0]["url_prefix"], "name": apps[0]["name"],
                  "type": type(apps[0]["app"]).__name__,
                  "same": plugin.Every8dPlugin().fastapi_apps is apps}))
"""


def test_importing_the_plugin_builds_nothing_and_unconfigured_is_fine():
    push_settings = ("AIRFLOW__EVERY8D__PUSH_", "EVERY8D_PUSH_")  # unconfigured, whatever this shell has
    env = {k: v for k, v in os.environ.items() if not k.startswith(push_settings)}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe == {
        "heavy": [],
        "prefix": "/every8d",
        "name": "EVERY8D pushes",
        "type": "FastAPI",
        "same": True,
    }
    assert "not configured" in done.stdout + done.stderr  # said once, without failing
