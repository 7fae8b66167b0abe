"""`maestro serve`: the HTTP API over the mirror (FastAPI on uvicorn), and its tokens.

`serve(settings, host=, port=, workers=, public=)` runs uvicorn until interrupted. The app is
`server.app.create_app`; the routes are in `server/routes/`, the authentication boundary in
`server/auth.py`, errors in `server/problems.py`, ETags in `server/http.py`, the change
stream in `server/events.py`, signed webhooks in `server/webhooks.py`.
"""

from __future__ import annotations

__all__ = ["serve"]

import json
import os

from maestro_git.errors import UsageError
from maestro_git.settings import Settings

# Open event streams never end by themselves: at shutdown they get this long, then are closed.
GRACEFUL_SECONDS = 3


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          public: bool = False, log_level: str = "info") -> None:
    """Serve the API until SIGINT/SIGTERM. With `workers > 1` uvicorn forks that many
    processes, each building the app from the options passed in its environment."""
    import uvicorn

    from maestro_git.server.app import SERVE_ENV, create_app

    if workers < 1:
        raise UsageError("--workers must be at least 1")
    if workers == 1:
        uvicorn.run(create_app(settings, public=public), host=host, port=port,
                    log_level=log_level, access_log=False,
                    timeout_graceful_shutdown=GRACEFUL_SECONDS)
        return
    os.environ[SERVE_ENV] = json.dumps({
        "repo": str(settings.repo_path), "database_url": settings.database_url,
        "branch": settings.branch, "public": public})
    uvicorn.run("maestro_git.server.app:factory", factory=True, host=host, port=port,
                workers=workers, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=GRACEFUL_SECONDS)
