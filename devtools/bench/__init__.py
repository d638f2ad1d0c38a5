"""The benchmark harness (``make bench``, ``python -m devtools.bench``): see :mod:`.run`.

Development tooling: not packaged, run from the repository; results under
``devtools/bench/results/`` (git-ignored), the committed tables next to this file.
"""
