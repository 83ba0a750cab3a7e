"""The README's GPU rows are exactly what `python -m dreamer.gpu_check --table` makes of the
committed report: nobody typed them."""

from __future__ import annotations

import glob
import os

from dreamer.gpu_check import GPU_END, GPU_START, ROOT, table


def _block(path: str) -> str:
    with open(path) as f:
        text = f.read()
    return text[text.index(GPU_START) + len(GPU_START) : text.index(GPU_END)].strip()


def test_readme_gpu_rows_come_from_the_committed_report():
    reports = sorted(glob.glob(os.path.join(ROOT, "results", "gpu", "gpu_check-*.json")))
    assert reports, "no committed GPU report"
    rendered = table(reports[-1]).strip()
    assert "| xs | fp32 | CUDA graph |" in rendered
    for doc in ("README.md", os.path.join("docs", "scale.md")):
        assert _block(os.path.join(ROOT, doc)) == rendered, doc
