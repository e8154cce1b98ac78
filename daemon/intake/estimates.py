"""What a request file would cost before it is sent: requests, batches, input tokens and price.

The file is read once, with the checks the daemon runs at intake; the batches are counted with the
splitter's own rule (PartFile.fits), without writing anything. Input tokens are the estimate batchd
keeps its token budgets with (a quarter of each line's bytes): a rough figure, on the high side for
English text. Output tokens cannot be known before the batch runs, so the cost is the input's only.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.intake.drop_names import is_compressed
from daemon.intake.line_formats import line_checker
from daemon.intake.splitter import PartFile
from daemon.intake.validation import BatchLimits, Findings, iter_requests
from daemon.pricing import ModelPrice, estimate_cost, price_for


@dataclass(frozen=True, slots=True)
class Estimate:
    findings: Findings
    batches: int
    input_tokens: int
    price: ModelPrice | None
    input_cost: float | None

    def as_json(self) -> dict[str, Any]:
        f = self.findings
        return {
            "ok": f.ok,
            "problem_count": f.problem_count,
            "requests": f.requests,
            "endpoint": f.endpoint,
            "model": f.model,
            "batches": self.batches,
            "estimated_input_tokens": self.input_tokens,
            "estimated_input_cost_usd": self.input_cost,
            "price_per_1m_input_tokens_usd": None if self.price is None else self.price.input,
        }

    def text(self) -> str:
        """One line on what sending the file would make and cost."""
        batches = f"{self.batches:,} batch" + ("es" if self.batches != 1 else "")
        head = f"would make {batches}; estimated input tokens ~{self.input_tokens:,}"
        if self.input_cost is None or self.price is None:
            model = self.findings.model
            return f'{head}; no price known for model {model}: add [prices."{model}"] to the config for a cost'
        return (
            f"{head}; estimated input cost ${self.input_cost:,.6f} at the batch price of "
            f"${self.price.input:g} per 1M input tokens (output tokens not included)"
        )


def estimate_file(path: Path, batch_limits: BatchLimits, prices: Mapping[str, ModelPrice]) -> Estimate:
    """Check ``path`` as intake does and count what it would make; nothing is written."""
    checker = line_checker(batch_limits)
    parts: list[PartFile] = []
    tokens = 0
    with gzip.GzipFile(path, "rb") if is_compressed(path.name) else open(path, "rb") as fh:
        for request in iter_requests(fh, checker):
            tokens += request.est_tokens
            if not parts or not parts[-1].fits(request, batch_limits):
                parts.append(PartFile(path, request.line_no))
            parts[-1].add(request)
    findings = checker.finish()
    price = price_for(findings.model, prices)
    return Estimate(findings, len(parts), tokens, price, estimate_cost(tokens, 0, price))
