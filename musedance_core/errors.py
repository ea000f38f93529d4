"""Exception types of the MuseDance core.

Every error a user can cause is one of these, and its message names the input, what was
expected, what was received and how to fix it. They subclass ``ValueError`` so callers that
only know the standard library still catch them.
"""


class MuseDanceError(ValueError):
    """Base class of every user-facing MuseDance error."""


class AudioError(MuseDanceError):
    """An audio input cannot be used: unreadable, empty, too long, or out of range."""


class InputError(MuseDanceError):
    """An argument (fps, tempo range, size, ...) is outside what MuseDance accepts."""


class VideoError(MuseDanceError):
    """A video cannot be written or read: bad frames, bad settings, or an unreadable file."""


class MusicEncoderError(InputError):
    """A music encoder folder cannot be used: not a model folder, not an audio model, unsupported,
    or its weights do not match its config."""


class TrainError(MuseDanceError):
    """A training run cannot start or go on: its config, data set, checkpoint or launch setup does
    not fit. The message names the setting and the fix (training/*.py print it, no traceback)."""
