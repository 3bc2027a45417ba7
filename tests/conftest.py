import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _threads_per_worker() -> int | None:
    """With pytest-xdist, the cores shared out between the workers (None when not distributed)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // workers)


def pytest_configure(config):
    # Under pytest-xdist each worker gets its share of the cores, and so do the kernels it starts
    # (nbval's, the grader's and JupyterLab's inherit this environment): two workers with two
    # OpenMP threads each on two cores would fight over them.
    threads = _threads_per_worker()
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
    # Tests read MNIST from the shared copy next to the checkout unless told otherwise; they never download.
    default = ROOT.parent / "shared" / "data" / "mnist"
    if "DIFFCOURSE_DATA_DIR" not in os.environ and default.exists():
        os.environ["DIFFCOURSE_DATA_DIR"] = str(default)
    os.environ.setdefault("DIFFCOURSE_DEVICE", "cpu")
    # the unit tests use small tensors: one thread is faster than two (and far faster on a busy machine)
    torch.set_num_threads(1)


@pytest.fixture
def tiny_export(tmp_path):
    """A tiny class-conditional U-Net exported like a recipe's ``NAME.pt`` (for the CLI tests)."""
    import torch

    from diffcourse.models import UNet

    torch.manual_seed(0)
    m = UNet(ch=8, ch_mult=(1, 2), num_classes=10)
    path = tmp_path / "tiny-cfg.pt"
    torch.save({"state_dict": m.state_dict(), "config": m.config, "model": "UNet", "recipe": "test",
                "settings": {"schedule": "linear", "T": 1000}}, path)
    return path


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def fresh_grading(monkeypatch):
    """Not inside a grader's run, no global time limit from the environment, and an empty record of check results
    before and after the test (for the grading tests: ``pytestmark = pytest.mark.usefixtures("fresh_grading")``)."""
    from diffcourse import grading

    monkeypatch.delenv(grading.GRADER_ENV, raising=False)
    monkeypatch.delenv(grading.TIMEOUT_ENV, raising=False)
    grading.reset()
    yield
    grading.reset()


@pytest.fixture
def run_check(capsys, fresh_grading):
    """``run_check(name, fn, **kwargs)`` runs ``check(name, fn, **kwargs)`` on a fresh record and returns its verdict
    and the text it printed (what the grading tests assert on: ✅ or ❌, the mistake named, the hint)."""
    from diffcourse.grading import check

    def run(name, fn, **kwargs):
        result = check(name, fn, **kwargs)
        return result, capsys.readouterr().out

    return run


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Distribute by scope (``--dist loadscope``), with the browser tests split one per scope.

    A notebook's nbval cells must run in order in one kernel, and a module's shared fixtures (a
    grading run, say) should run once, so the scope is the notebook or the test module. The browser
    tests are independent of one another and are the longest, so each is a scope of its own and
    the workers share them out (each worker starts its own JupyterLab). With
    ``--no-loadscope-reorder`` (pyproject.toml) scopes start in collection order, so these long tests
    (collected first) start first and the short notebooks fill in at the end; xdist's default order
    (most tests per scope first) would leave the one-test browser scopes, the longest, for last."""
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith("tests/e2e/"):
                return nodeid
            return super()._split_scope(nodeid)

    return Scheduling(config, log)
