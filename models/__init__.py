"""nowplaying models."""
