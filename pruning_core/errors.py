"""The refusal type shared by the loaders and the time limits; it imports nothing, so any engine
module can import it without importing the loaders."""


class UntrustedFileError(ValueError):
    """A user's file was refused: the message names the problem and what would be valid."""
