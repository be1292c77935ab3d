"""The media stage: one supervised ffmpeg per broadcast turns the ingest stream into a CMAF ladder.

`profiles` loads the stream profiles, `ladder` fits one to a source, `command`
builds the ffmpeg command line, `progress` reads its progress reports, and
`transcoder` runs and supervises it. `pipeline` wires broadcasts to transcoders
and presentations.
"""
