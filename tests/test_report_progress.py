"""pipeline.progress: bars on a terminal only, overridable by CAPFORECAST_PROGRESS."""
import io

import pytest

from pipeline.progress import ENV_VAR, progress, progress_enabled


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quiet_when_stream_is_not_a_tty(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    out = io.StringIO()
    assert list(progress(range(50), desc="work", file=out, mininterval=0)) == list(range(50))
    assert out.getvalue() == ""


def test_draws_on_a_tty(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    out = FakeTTY()
    list(progress(range(5), desc="work", file=out, mininterval=0))
    assert "work" in out.getvalue()


@pytest.mark.parametrize("value", ["0", "false", "off", "no"])
def test_env_var_silences_a_tty(monkeypatch, value):
    monkeypatch.setenv(ENV_VAR, value)
    out = FakeTTY()
    list(progress(range(5), desc="work", file=out, mininterval=0))
    assert out.getvalue() == ""


def test_env_var_forces_bars_off_a_tty(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "1")
    assert progress_enabled(io.StringIO())


def test_manual_bar_with_total_counts_updates(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    out = FakeTTY()
    with progress(total=3, desc="exec", file=out, mininterval=0) as bar:
        for _ in range(3):
            bar.update(1)
    assert "3/3" in out.getvalue()


def test_closed_stream_counts_as_not_a_tty(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    stream = io.StringIO()
    stream.close()
    assert not progress_enabled(stream)
