"""Development tooling of the repository: the local Kafka and Redis services, the benchmarks, and
the validation-split studies of the models (``devtools.validation``, ``devtools.skip_ceiling``).

Never packaged (not in the wheel, not in the Docker image) and never imported by the runtime
packages; it runs from a checkout, as ``python -m devtools.services`` and
``python -m devtools.bench`` (``make up``, ``make bench``).
"""
