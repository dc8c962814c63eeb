"""Report: ``report.md``, ``report.html`` and ``figures/`` read from a run directory's stored results.

- ``inputs``: loading a run directory into ``RunInputs``; ``fields`` and ``stored``: one normalised view of
  each stored value, shared by every part below so they never disagree.
- ``document``: the report as plain blocks; ``html``: those blocks as HTML; ``sections``: the words and the
  order; ``tables`` and ``provenance``: the tables.
- ``style``: the figures' shared look; ``figures``, ``figures_atlas``, ``figures_loss``: the figures.
- ``stage``: the ``report`` stage and command.

May import: plumbing and forecast (pure statistics such as pass@k). Never runs a model or a sandbox.
"""
