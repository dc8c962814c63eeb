"""Errors a user can fix: printed as one paragraph naming file, line and field; exit code 2."""


class UserError(Exception):
    """Bad input, bad config or a missing prerequisite; the message says what to do."""
