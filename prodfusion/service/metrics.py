"""Prometheus collectors of one app, and the middleware that counts and times requests."""

from __future__ import annotations

import time

__all__ = ["make_metrics", "MetricsMiddleware", "prometheus_registry"]


def make_metrics():
    """A fresh :class:`ServiceMetrics` (its own collector registry)."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    class ServiceMetrics:
        """Prometheus collectors of one app (own registry: several apps can live in one process)."""

        def __init__(self) -> None:
            self.registry = CollectorRegistry(auto_describe=True)
            r = self.registry
            self.requests = Counter(
                "prodfusion_http_requests", "HTTP requests by route template, method, status and "
                "A/B variant ('' when the route has none).",
                ["route", "method", "status", "variant"], registry=r)
            self.latency = Histogram(
                "prodfusion_http_request_duration_seconds",
                "Time from request to the end of the response, by route template and variant.",
                ["route", "variant"], registry=r,
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
            self.events = Counter(
                "prodfusion_events", "Events received, by type, variant and outcome "
                "(stored | quarantined | duplicate).", ["type", "variant", "outcome"], registry=r)
            self.quarantined = Counter(
                "prodfusion_events_quarantined", "Events stored but excluded from reports, by "
                "type, variant and reason (unverified | variant_mismatch | target_not_served | "
                "late).", ["type", "variant", "reason"], registry=r)
            self.store_errors = Counter(
                "prodfusion_event_store_errors", "Event batches refused with 503 because the "
                "store failed.", registry=r)
            self.reloads = Counter(
                "prodfusion_model_reloads", "Model folder publications seen, by outcome "
                "(loaded | refused).", ["outcome"], registry=r)
            self.results = Counter(
                "prodfusion_similar_results", "Recommendation lists served from the result "
                "cache (hit) or computed (miss).", ["result"], registry=r)
            self.products = Gauge(
                "prodfusion_model_products", "Products in the model serving each variant.",
                ["variant"], registry=r, multiprocess_mode="max")

    return ServiceMetrics()


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by route template and variant."""

    def __init__(self, app, metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = [500]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "<unmatched>"
            variant = (scope.get("state") or {}).get("variant", "")
            self.metrics.requests.labels(path, scope["method"], str(status[0]), variant).inc()
            self.metrics.latency.labels(path, variant).observe(time.perf_counter() - t0)


def prometheus_registry(metrics, multiproc_dir: str | None):
    """The registry ``/metrics`` renders: the app's own, or (``serve --workers N``) one that
    sums every worker's files in ``multiproc_dir``."""
    if not multiproc_dir:
        return metrics.registry
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiproc_dir)
    return registry
