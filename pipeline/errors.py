"""What a command's exit status means, the same for every command, and the errors that carry it.

0 the result was produced; 1 the command ran but produced none (its output or message says why); 2 bad input
(a file, line, field or option to fix; nothing expensive was started); 3 infrastructure (sandbox, disk, memory:
nothing written was lost, and rerunning the same command resumes). ``pipeline.cli.main`` maps them.
"""

EXIT_OK, EXIT_NO_RESULT, EXIT_BAD_INPUT, EXIT_INFRASTRUCTURE = 0, 1, 2, 3


class UserError(Exception):
    """Bad input, bad config or a missing prerequisite; the message says what to do (exit 2)."""


class InfrastructureError(Exception):
    """The machine failed the command (sandbox errors that persisted, a disk that filled); a rerun resumes (exit 3)."""
