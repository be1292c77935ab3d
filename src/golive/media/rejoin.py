"""A returning publisher rejoins its broadcast's ladder, whatever it now sends (media).

Players hold the multivariant playlist they loaded and switch between its media
playlists by URI, so a broadcast keeps the ladder planned for its first publisher:
the same rendition names, sizes, frame rates, bitrates and codecs. A publisher that
comes back inside the reconnect window at another resolution or frame rate is scaled
(up if it must be) and frame-rate converted to that ladder, letterboxed when its
aspect ratio changed; players see only a discontinuity.

What no encoder setting can hide ends the presentation instead (`RejoinError`): a
passthrough rendition copies the publisher's H.264, so a publisher that now sends
another codec cannot feed it, and an audio track that appears or disappears changes
every rendition's CODECS. The pipeline then ends the playlists (EXT-X-ENDLIST) and
starts a fresh presentation that players load anew.
"""

from __future__ import annotations

from dataclasses import replace

from golive.media.ladder import LadderError, LadderPlan, SourceInfo

__all__ = ["RejoinError", "rejoin_plan"]


class RejoinError(LadderError):
    """The broadcast's ladder cannot be produced from the returning publisher's source."""


def rejoin_plan(plan: LadderPlan, source: SourceInfo) -> LadderPlan:
    """`plan`'s renditions, produced from `source`; raises `RejoinError` saying why not.

    Encoded renditions keep everything; the command scales whatever `plan.source`
    says the input is to each of them. A passthrough rendition can only carry the
    publisher's picture: its size follows the new source, its codec must not change.
    """
    video = source.width > 0 and source.height > 0
    if plan.audio_only:
        if video:
            raise RejoinError("the returning publisher sends video and the broadcast was "
                              "audio only: the renditions change")
        if not source.has_audio:
            raise RejoinError("the returning publisher sends neither video nor audio")
        return replace(plan, source=source)
    if not video:
        raise RejoinError(
            f"the returning publisher sends no usable video ({source.width}x{source.height})"
        )
    if source.has_audio != plan.has_audio:
        # (A returning publisher, or the same one whose sound stopped or began.)
        change = "no audio any more" if plan.has_audio else "audio now"
        raise RejoinError(f"the publisher sends {change}: the renditions' codecs change")
    passthrough = [r for r in plan.renditions if r.passthrough]
    if passthrough and not source.browsers_decode:
        raise RejoinError(
            f"passthrough rendition {passthrough[0].name!r} copies H.264 browsers decode and "
            f"the returning publisher sends {source.why_not_copied()}"
        )
    renditions = tuple(
        replace(r, width=source.width, height=source.height) if r.passthrough else r
        for r in plan.renditions
    )
    notes = plan.notes
    old = plan.source
    if (old.width, old.height) != (source.width, source.height):
        notes = (
            *notes,
            f"publisher returned at {source.width}x{source.height} "
            f"(was {old.width}x{old.height}); the ladder is kept",
        )
    return replace(plan, source=source, renditions=renditions, notes=notes)
