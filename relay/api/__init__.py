"""The admin HTTP API: quart-trio on hypercorn over the shared storage.

``create_app(runtime)`` builds the application; ``serve_api(runtime)`` serves it on
``api.listen``. Nothing here imports ``relay.smtp`` (nor the reverse).
"""

from .app import create_app
from .server import Bound, serve_api

__all__ = ["Bound", "create_app", "serve_api"]
