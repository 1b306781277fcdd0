"""Power-loss recovery: a playable working copy from an MP4 whose camera died before writing its moov.

The approach of untrunc (github.com/anthwlock/untrunc), written afresh: take the codec configuration from a
healthy file from the same camera (or from parameter sets repeated in the stream), walk the surviving mdat
sample by sample, and mux the samples, byte for byte, into a new MP4::

    res = recover(Path("JB-1.mp4"), Path("JB-1.recovered.mp4"), reference=Path("same-camera.mp4"))
    res.status      # 'recovered' | 'partial' | 'impossible'
    res.message     # what happened, and what to do if it did not work
    res.as_dict()   # everything a custody event needs to repeat it

Statuses: `recovered` - every sample that survived is in the copy (only the incomplete last sample, zeros
or non-video data were left out); `partial` - a copy was written but damage was found (bytes that are neither
video nor audio, lost pictures, frames that decode with errors: `unreliable_frames` names them);
`impossible` - no copy (no media data, no codec configuration, or one that does not fit).

Modules: boxes (top-level layout), window (bounded reads), h264/h265/nal/bitstream (NAL syntax), audio (AAC
frame lengths), walker (the mdat walk), inband (parameter sets without a reference), config (reference),
timing, mux, verify, session (bookkeeping), core (`recover`), result.
"""

from pipeline.recovery.config import ReferenceUnusable
from pipeline.recovery.core import RecoveryInputError, recover
from pipeline.recovery.result import NO_CONFIG, STATUSES, RecoveryResult

__all__ = ["NO_CONFIG", "STATUSES", "RecoveryInputError", "RecoveryResult", "ReferenceUnusable", "recover"]
