"""Choose the library that samples the one model (``SamplerOptions.backend``): NumPyro (default) or PyMC with
nutpie; each imported only when chosen."""
from __future__ import annotations

import numpy as np

from pipeline.forecast.problem_model import LINKS, CountGrid, LinkPosterior, SamplerOptions, ShockPrior


def sample(grid: CountGrid, link: str, prior: ShockPrior, options: SamplerOptions,
           keep: np.ndarray | None = None) -> LinkPosterior:
    """Fit one link with the chosen library; checkpoints where ``keep`` is False are held out (no likelihood)."""
    if keep is not None:
        grid = grid.masked(keep)
    if link not in LINKS:
        raise ValueError(f"unknown link {link!r}; one of {', '.join(LINKS)}")
    if options.backend == "numpyro":
        from pipeline.forecast.problem_model import sample_numpyro

        return sample_numpyro(grid, link, prior, options, keep)
    if options.backend == "pymc":
        from pipeline.forecast.pymc_model import sample_pymc

        return sample_pymc(grid, link, prior, options, keep)
    raise ValueError(f"unknown sampler backend {options.backend!r}; numpyro or pymc")
