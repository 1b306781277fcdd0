"""The investigator and field-team web portal: server-rendered pages at `/`.

`router` is mounted by the API app factory beside `/api/`; the portal holds no
rules of its own — every page asks the API's authorisation functions.
"""

from pipeline.web import bundles, cameras, exhibit, recover, uploads  # noqa: F401 - registers their routes on the router
from pipeline.web.routes import router

__all__ = ["router"]
