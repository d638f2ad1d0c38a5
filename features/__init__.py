"""nowplaying features."""
