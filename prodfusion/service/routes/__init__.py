"""The service's routes, one router per concern; :func:`prodfusion.service.app.create_app`
includes them all."""

from __future__ import annotations

__all__ = ["ROUTERS"]

#: Modules whose ``router`` the app includes, in this order.
ROUTERS = ("ops", "similar", "events", "experiments", "page")
