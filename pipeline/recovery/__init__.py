"""Power-loss recovery: a playable working copy from an MP4 whose camera died before writing its moov.

The approach of untrunc (github.com/anthwlock/untrunc), written afresh: take the codec configuration from a
healthy file from the same camera (or from parameter sets repeated in the stream), walk the surviving mdat
sample by sample, and mux the samples, byte for byte, into a new MP4. See `recover`.
"""

from pipeline.recovery.config import ReferenceUnusable
from pipeline.recovery.core import RecoveryInputError, recover
from pipeline.recovery.result import NO_CONFIG, STATUSES, RecoveryResult

__all__ = ["NO_CONFIG", "STATUSES", "RecoveryInputError", "RecoveryResult", "ReferenceUnusable", "recover"]
