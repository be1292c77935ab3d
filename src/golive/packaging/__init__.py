"""CMAF packaging: ISO-BMFF fragment splitting, per-rendition windows and LL-HLS playlists (packaging)."""
