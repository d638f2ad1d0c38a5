"""Every Prometheus metric of nowplaying, in one place.

Names follow ``nowplaying_<thing>_<unit>``; histograms have explicit buckets. The worker and the
API each serve the process-wide registry at ``/metrics``. The Grafana dashboard under
``deploy/grafana`` queries these names, and a test checks that they stay in step.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram, Info

#: 0.5 ms .. 1 s, for event-to-recommendation latency.
LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
#: 50 us .. 1 s, for Redis round trips and inference calls.
FAST_BUCKETS: Final = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
COUNT_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000)

# --- worker ---------------------------------------------------------------------------------
EVENTS = Counter("nowplaying_events_total", "Play events consumed, by event type.", ["event_type"])
DUPLICATE_EVENTS = Counter(
    "nowplaying_duplicate_events_total", "Events already applied before (redeliveries)."
)
DEAD_LETTERS = Counter(
    "nowplaying_dead_letters_total",
    "Messages sent to the dead-letter topic, by error class.",
    ["reason"],
)
RECOMMENDATIONS = Counter(
    "nowplaying_recommendations_total", "Recommendation lists published.", ["source"]
)
EVENT_TO_RECOMMENDATION = Histogram(
    "nowplaying_event_to_recommendation_seconds",
    "Time from the play event's Kafka timestamp to the recommendation's publish.",
    buckets=LATENCY_BUCKETS,
)
REDIS_ROUNDTRIP = Histogram(
    "nowplaying_redis_roundtrip_seconds",
    "Redis pipeline round trips, by operation.",
    ["operation"],
    buckets=FAST_BUCKETS,
)
INFERENCE = Histogram(
    "nowplaying_inference_seconds", "One onnxruntime scoring call.", buckets=FAST_BUCKETS
)
INFERENCE_ROWS = Histogram(
    "nowplaying_inference_batch_rows",
    "Candidate rows scored in one onnxruntime call.",
    buckets=COUNT_BUCKETS,
)
BATCH_EVENTS = Histogram(
    "nowplaying_batch_events", "Events processed per agent iteration.", buckets=COUNT_BUCKETS
)
CANDIDATES = Histogram(
    "nowplaying_candidates_per_request",
    "Candidates ranked for one track start.",
    buckets=COUNT_BUCKETS,
)
RETRIES = Counter(
    "nowplaying_retries_total",
    "Retries after a failing dependency, by dependency.",
    ["dependency"],
)
DEPENDENCY_UP = Gauge(
    "nowplaying_dependency_up",
    "1 when the last call to the dependency succeeded.",
    ["dependency"],
)
CONSUMER_LAG = Gauge(
    "nowplaying_consumer_lag_messages",
    "Messages behind the partition's high watermark.",
    ["topic", "partition"],
)
OFFSET_GAPS = Counter(
    "nowplaying_offset_gaps_total",
    "Gaps in a partition's input (offsets the consumer skipped), each rewound, by partition.",
    ["topic", "partition"],
)
FENCED_BATCHES = Counter(
    "nowplaying_fenced_batches_total",
    "Batches the store refused because another worker owns the partition now, by partition.",
    ["topic", "partition"],
)
MODEL_INFO = Info("nowplaying_model", "The model version in use (and the A/B test variants).")
MODEL_RELOADS = Counter(
    "nowplaying_model_reloads_total",
    "Hot model reloads by result: swapped, or why the target was refused (not_found, "
    "load_failed, feature_mismatch, parity_failed, invalid_spec); the old models keep serving.",
    ["result"],
)
VARIANT_LISTS = Counter(
    "nowplaying_variant_lists_total",
    "Lists computed during an A/B test, by variant (users assigned to it, per track start).",
    ["variant"],
)
VARIANT_OUTCOMES = Counter(
    "nowplaying_variant_outcomes_total",
    "Track ends during an A/B test, by the listener's variant and outcome (skip_early, "
    "skip_late, listened): the online comparison of the variants.",
    ["variant", "outcome"],
)
EXPOSURES = Counter(
    "nowplaying_exposures_total",
    "Lists shown (exposures), by A/B variant ('' outside a test) and model version.",
    ["variant", "model_version"],
)
ATTRIBUTED_PLAYS = Counter(
    "nowplaying_attributed_plays_total",
    "Exposures followed by a play, by variant, model version, hit (the played track was in "
    "the list: hits@10) and how the play ended (listened, skip_late, skip_early, no_end).",
    ["variant", "model_version", "hit", "outcome"],
)

# --- API ------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "nowplaying_http_requests_total", "HTTP requests, by route and status.", ["route", "status"]
)
HTTP_LATENCY = Histogram(
    "nowplaying_http_request_duration_seconds",
    "HTTP request duration, by route.",
    ["route"],
    buckets=FAST_BUCKETS,
)
