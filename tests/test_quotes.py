"""Every figure the prose marks as quoted equals its source (scripts/quotes.py), and the checker catches stale ones."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import quotes  # noqa: E402


def test_every_marked_quote_in_the_lessons_readme_and_docs_equals_its_source():
    count, problems = quotes.check_all()
    assert not problems, "\n".join(problems)


def test_a_stale_figure_a_missing_one_and_a_wrong_percentage_are_caught():
    floor = quotes.leaf("mnist_quality.json", "floor/fid_mean")
    good = f"a floor of {floor:.2f} <!-- quote {floor:.2f} = {{mnist_quality.json floor/fid_mean}} -->"
    assert quotes.check_text("t", good) == []
    stale = f"a floor of {floor + 0.5:.2f} <!-- quote {floor + 0.5:.2f} = {{mnist_quality.json floor/fid_mean}} -->"
    assert "says" in quotes.check_text("t", stale)[0]
    hidden = f"a floor <!-- quote {floor:.2f} = {{mnist_quality.json floor/fid_mean}} -->"
    assert "does not show it" in quotes.check_text("t", hidden)[0]
    share = quotes.leaf("mnist_quality.json", "ddim50/confident_share")
    pct = f"{100 * share:.1f} % <!-- quote {100 * share:.1f} % = {{mnist_quality.json ddim50/confident_share}} -->"
    assert quotes.check_text("t", pct) == []
    assert quotes.check_text("t", pct.replace(" %", "", 1).replace(" % =", " =")) != []


def test_expressions_combine_results_and_outputs_are_searched_nearby():
    s = quotes.leaf("manifest.json", "checkpoints/mnist-ddpm/wall_time_s") / 3600
    text = f"about {s:.1f} h <!-- quote {s:.1f} = {{manifest.json checkpoints/mnist-ddpm/wall_time_s}} / 3600 -->"
    assert quotes.check_text("t", text) == []
    assert quotes.check_text("t", "RMSE 0.549 <!-- quote 0.549 = output -->", outputs="rmse: 0.5491") == []
    assert quotes.check_text("t", "RMSE 0.599 <!-- quote 0.599 = output -->", outputs="rmse: 0.5491") != []
    assert "no results file" in quotes.check_text("t", "x 1.0 <!-- quote 1.0 = {nope.json a} -->")[0]
