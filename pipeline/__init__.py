"""capforecast: forecast a code model's capability and loss from a family of smaller checkpoints.

The tree follows the data, lowest layer first (tests/test_layout.py enforces that imports only go down):
plumbing (``errors``, ``records``, ``progress``, ``config``, ``problems``, ``manifest``) -> ``generate``
(and the embedded ``reference`` family) -> ``execute`` -> ``counts`` -> ``forecast`` -> ``sampling`` ->
``report`` -> ``run`` / ``slurm`` -> ``cli``. The sandbox itself is the separate ``sandbox`` package.
"""

__version__ = "0.1.0"
