"""HTTP origin: serves LL-HLS playlists and media from the packaging windows (delivery)."""
