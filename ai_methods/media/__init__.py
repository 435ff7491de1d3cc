"""The one decoding layer: media read as a player or a browser shows it.

Every consumer decodes through here, so each rule is written once: probing at
acquisition, frame sampling in the engine, the AI methods' image loading, the
method harness, thumbnails.

- ``pictures``: stills. EXIF orientation applied, any Pillow mode converted to
  8-bit RGB with the right scaling, transparency composited on white, sizes as
  displayed.
- ``animation``: animated GIF, WebP and APNG as a short timeline of frames at
  their display times.
- ``video``: the display matrix and sample aspect ratio applied, the real
  duration, time measured from the start of the picture, frames stamped with
  the presentation time of the frame actually decoded; audio-only files told
  apart from videos.

Nothing here imports Dagster or anything outside ``ai_methods``; PyAV and
Pillow load lazily.
"""
