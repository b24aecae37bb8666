"""Render time of the HTML report, many results (target: 200 results in <= 3 s on the CI machine).

    python benchmarks/report_render.py [--records 200] [--rounds 5]

Uses the test suite's fixed document, replicated; prints the median render time over the rounds."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_i2v.report.html import render_html
from pytest_i2v.report.markdown import render_markdown
from tests.report_fixtures import document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    doc = document()
    base = doc["records"]
    doc["records"] = [
        dict(base[i % len(base)], nodeid=f"{base[i % len(base)]['nodeid']}-{i}")
        for i in range(args.records)
    ]
    render_html(doc)  # warm-up: imports, template compilation, font cache
    html_times, md_times = [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        html = render_html(doc)
        html_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        render_markdown(doc)
        md_times.append(time.perf_counter() - started)
    print(
        f"{args.records} results: HTML {statistics.median(html_times):.2f} s "
        f"(median of {args.rounds}, "
        f"{len(html) / 1e6:.1f} MB), Markdown {statistics.median(md_times) * 1000:.0f} ms; "
        f"target HTML <= 3 s"
    )


if __name__ == "__main__":
    main()
