"""scripts/quoted_figures.py finds the prose's quotes of a results file (the tool used after re-running a benchmark)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import quoted_figures  # noqa: E402


def test_spellings_cover_decimals_and_percentages_and_skip_short_numbers():
    assert {"0.958", "95.8", "95.80"} <= quoted_figures.spellings(0.958) and "96" not in quoted_figures.spellings(0.958)
    assert "13.7" in quoted_figures.spellings(13.7135) and "13.71" in quoted_figures.spellings(13.7135)
    assert quoted_figures.spellings(0.5) == {"0.50", "0.500", "50.0", "50.00"}   # "0.5" and "50" are too short
    assert not {"100", "0"} & quoted_figures.spellings(1.0)


def test_it_finds_the_readme_quote_of_chapter_5s_figures(tmp_path):
    q = json.loads((ROOT / "benchmarks/results/mnist_quality.json").read_text())
    s = next(s for s, e in q["cg"]["per_s"].items() if e["fid"] >= 10)   # a figure of 3 digits, which the script lists
    path = tmp_path / "q.json"
    path.write_text(json.dumps({"cg": {"per_s": {s: {"fid": q["cg"]["per_s"][s]["fid"]}}}, "n": 200}))
    out = subprocess.run([sys.executable, str(ROOT / "scripts/quoted_figures.py"), str(path)], capture_output=True,
                         text=True, check=True).stdout
    figure = f"{q['cg']['per_s'][s]['fid']:.1f}"
    assert "README.md" in out and f": {figure}  <- cg.per_s.{s}.fid" in out
    assert "notebooks/05_classifier_guidance.ipynb" in out
