"""The admin HTTP API: quart-trio on hypercorn over the shared storage.

``relay.api.app.create_app(runtime)`` builds the application; ``relay.api.server.serve_api(runtime)``
serves it on ``api.listen``. Nothing here imports ``relay.smtp`` (nor the reverse).

This ``__init__`` imports nothing: the web console (``relay.console``) builds on this
package's pieces (``context``, ``auth``, ``problems`` …) and ``app`` installs the
console, so re-exporting ``create_app`` here would make importing any of those pieces
import the console back — an import cycle.
"""
