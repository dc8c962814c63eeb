"""A run directory: every path in it (``RunDir``), its manifest (``manifest``) and the records its stages
write and the report reads (``results``).

This package is the only place that spells a run directory's file names (tests/test_layout.py checks it):

    manifest.json            the family, its problems, code and package versions, stage timings (Manifest)
    samples/<ckpt>.jsonl     completions (samples/shards/ while a sharded generate runs)
    verdicts/<ckpt>.jsonl    one verdict per sample
    generation/<stem>.json   the generate command's summary per checkpoint (or shard)
    pass_counts.csv          checkpoint,compute,task_id,n,passed
    forecast.json            the capability forecast            loss.json, loss_measurements.csv,
    backtest.json            held-out forecasts, scored           loss_documents.jsonl: the loss law
    forecasts/*.json         registered forecasts; forecasts/scores.json their scores
    plan.json, passuntil.csv, passuntil.json   adaptive sampling
    slurm/                   job scripts, logs/ and jobs.json
    report.md, report.html, figures/*.png

Plumbing: imports only plumbing (errors, records, config).
"""
from __future__ import annotations

from pathlib import Path


class RunDir:
    """The paths of one run directory; nothing is created or read until a method says so."""

    MANIFEST = "manifest.json"
    PASS_COUNTS = "pass_counts.csv"
    FORECAST = "forecast.json"
    BACKTEST = "backtest.json"
    LOSS = "loss.json"
    LOSS_MEASUREMENTS = "loss_measurements.csv"
    LOSS_DOCUMENTS = "loss_documents.jsonl"
    PLAN = "plan.json"
    PASSUNTIL_CSV = "passuntil.csv"
    PASSUNTIL_JSON = "passuntil.json"
    SCORES = "scores.json"
    REPORT_MD = "report.md"
    REPORT_HTML = "report.html"
    SLURM_JOBS = "jobs.json"
    SAMPLES, VERDICTS, FORECASTS, GENERATION, FIGURES, SLURM = (
        "samples", "verdicts", "forecasts", "generation", "figures", "slurm")
    FILES = (MANIFEST, PASS_COUNTS, FORECAST, BACKTEST, LOSS, LOSS_MEASUREMENTS, LOSS_DOCUMENTS, PLAN,
             PASSUNTIL_CSV, PASSUNTIL_JSON, SCORES, REPORT_MD, REPORT_HTML, SLURM_JOBS)
    FOLDERS = (SAMPLES, VERDICTS, FORECASTS, GENERATION, FIGURES, SLURM)

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    def __eq__(self, other) -> bool:
        return isinstance(other, RunDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # ------------------------------------------------------------------ files at the top
    manifest = property(lambda self: self.path / self.MANIFEST)
    pass_counts = property(lambda self: self.path / self.PASS_COUNTS)
    forecast = property(lambda self: self.path / self.FORECAST)
    backtest = property(lambda self: self.path / self.BACKTEST)
    loss = property(lambda self: self.path / self.LOSS)
    loss_measurements = property(lambda self: self.path / self.LOSS_MEASUREMENTS)
    loss_documents = property(lambda self: self.path / self.LOSS_DOCUMENTS)
    plan = property(lambda self: self.path / self.PLAN)
    passuntil_csv = property(lambda self: self.path / self.PASSUNTIL_CSV)
    passuntil_json = property(lambda self: self.path / self.PASSUNTIL_JSON)
    report_md = property(lambda self: self.path / self.REPORT_MD)
    report_html = property(lambda self: self.path / self.REPORT_HTML)
    figures = property(lambda self: self.path / self.FIGURES)

    # ------------------------------------------------------------------ per checkpoint
    @property
    def samples_dir(self) -> Path:
        return self.path / self.SAMPLES

    @property
    def shards_dir(self) -> Path:
        return self.samples_dir / "shards"   # also in samples_beside

    def samples(self, checkpoint: str, shard: tuple[int, int] | None = None) -> Path:
        """A checkpoint's samples: the merged file, or one shard's own file while a sharded generate runs."""
        if shard is None or shard[1] == 1:
            return self.samples_dir / f"{checkpoint}.jsonl"
        return self.shards_dir / f"{checkpoint}.shard-{shard[0]}-of-{shard[1]}.jsonl"

    def shard_files(self, checkpoint: str | None = None) -> list[Path]:
        """The shard files of one checkpoint (or of all), in name order."""
        return self._shards(self.shards_dir, checkpoint)

    @staticmethod
    def _shards(folder: Path, checkpoint: str | None) -> list[Path]:
        import glob

        pattern = f"{glob.escape(checkpoint)}.shard-*.jsonl" if checkpoint is not None else "*.jsonl"
        return sorted(Path(folder).glob(pattern))

    @staticmethod
    def samples_beside(path: Path, checkpoint: str) -> set[Path]:
        """Every file that may hold samples of ``checkpoint`` next to the samples file ``path`` (merged or a
        shard): ``path`` itself, the merged file and every shard file."""
        path = Path(path)
        folder = path.parent.parent if path.parent.name == "shards" else path.parent
        return {path, folder / f"{checkpoint}.jsonl", *RunDir._shards(folder / "shards", checkpoint)}

    @property
    def verdicts_dir(self) -> Path:
        return self.path / self.VERDICTS

    def verdicts(self, checkpoint: str) -> Path:
        return self.verdicts_dir / f"{checkpoint}.jsonl"

    def verdict_files(self) -> list[Path]:
        """Every checkpoint's verdicts file, in name order."""
        return sorted(self.verdicts_dir.glob("*.jsonl")) if self.verdicts_dir.is_dir() else []

    def generation_summary(self, stem: str) -> Path:
        return self.path / self.GENERATION / f"{stem}.json"

    # ------------------------------------------------------------------ registered forecasts
    @property
    def forecasts_dir(self) -> Path:
        return self.path / self.FORECASTS

    @staticmethod
    def registered_in(folder: Path) -> list[Path]:
        """The registered forecast records in a forecasts folder (oldest name first), without scores.json."""
        folder = Path(folder)
        return sorted(p for p in folder.glob("*.json") if p.name != RunDir.SCORES) if folder.is_dir() else []

    @staticmethod
    def scores_in(folder: Path) -> Path:
        return Path(folder) / RunDir.SCORES

    @property
    def scores(self) -> Path:
        return self.scores_in(self.forecasts_dir)

    def registered(self) -> list[Path]:
        return self.registered_in(self.forecasts_dir)

    # ------------------------------------------------------------------ Slurm
    @property
    def slurm_dir(self) -> Path:
        return self.path / self.SLURM

    @property
    def slurm_logs(self) -> Path:
        return self.slurm_dir / "logs"

    @property
    def slurm_jobs(self) -> Path:
        return self.slurm_dir / self.SLURM_JOBS

    def sbatch(self, stage: str) -> Path:
        """The job script of one array: ``generate`` or ``execute``."""
        return self.slurm_dir / f"{stage}.sbatch"

    # ------------------------------------------------------------------ the manifest
    def read_manifest(self):
        """The typed manifest, upgraded from older versions; UserError (naming the file) when absent or invalid."""
        from pipeline.rundir.manifest import read_manifest

        return read_manifest(self.manifest, self.path)

    def has_manifest(self) -> bool:
        return self.manifest.is_file()

    def write_manifest(self, manifest) -> None:
        """The one writer of manifest.json (atomic: readers see the old or the new file, never half)."""
        from pipeline.rundir.manifest import write_manifest

        write_manifest(self.manifest, manifest)
