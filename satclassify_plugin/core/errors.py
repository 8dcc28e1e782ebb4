"""Errors raised by core code. Algorithms turn them into QgsProcessingException."""


class SatClassifyError(Exception):
    """A problem with the user's input or data, with a message that names the fix."""
