"""Every Prometheus metric of the project, as named module constants.

Names and labels follow DESIGN.md; label values are bounded (cluster names, kinds, verbs, codes),
never object names of unbounded sets except where the design asks for them.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

API_REQUESTS_TOTAL = Counter(
    "federation_api_requests_total",
    "API requests served, by verb, resource and HTTP code.",
    ["verb", "resource", "code"],
)
API_REQUEST_DURATION_SECONDS = Histogram(
    "federation_api_request_duration_seconds",
    "Time to serve an API request (watches excluded).",
    ["verb", "resource"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
