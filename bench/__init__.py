"""nowplaying bench."""
