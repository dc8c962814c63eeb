"""Generate: sample completions from every checkpoint of a family into ``samples/<checkpoint>.jsonl``.

- ``stage``: the ``generate`` stage and command (resumable, shardable, one seed per sample).
- ``seeds``: the per-sample seed, a hash of (checkpoint, task, sample index) and the family seed.
- ``backends``: the engine Protocol and its implementations (``hf`` for transformers, ``vllm``), each
  imported only when chosen.
- ``tinyfamily``: tiny random models built from configs, for plumbing checks and tests.

May import: plumbing (``errors``, ``records``, ``progress``, ``config``, ``problems``, ``manifest``). Nothing
from execute, forecast, sampling, report or run.
"""
