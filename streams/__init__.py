"""nowplaying streams."""
