"""nowplaying: real-time streaming features and inference for Now Playing recommendations.

This package is the small shared kernel: settings, the event contract, the Redis key layout,
metrics and the command line. ``streams`` and ``serving`` build on ``features`` and ``models``.
"""

__version__ = "0.1.0"
