"""nowplaying serving."""
