"""Errors of the training package: user problems the CLI prints as one line (exit code 2)."""

from satclassify_plugin.core.contract.errors import SatClassifyError


class TrainingError(SatClassifyError):
    """A problem with the user's input (data, config, checkpoint, device) with a message naming the fix."""
