"""What a request file would cost before it is sent: requests, batches, input tokens and price.

The file is read once, with the checks the daemon runs at intake; the batches are counted with the
splitter's own rule (PartFile.fits), without writing anything. Input tokens are the estimate batchd
keeps its token budgets with (a quarter of each line's bytes): a rough figure, on the high side for
English text. Output tokens cannot be known before the batch runs, so the cost is the input's only.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.intake.drop_names import is_compressed
from daemon.intake.line_formats import line_checker
from daemon.intake.splitter import PartFile
from daemon.intake.validation import BatchLimits, Findings, Request, iter_requests
from daemon.pricing import ModelPrice, estimate_cost, price_for


@dataclass(frozen=True, slots=True)
class ModelEstimate:
    """One model's share of a file: its own batches when the file is split by model."""

    model: str | None
    requests: int
    batches: int
    input_tokens: int
    price: ModelPrice | None
    input_cost: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "requests": self.requests,
            "batches": self.batches,
            "estimated_input_tokens": self.input_tokens,
            "estimated_input_cost_usd": self.input_cost,
            "price_per_1m_input_tokens_usd": None if self.price is None else self.price.input,
        }

    def text(self) -> str:
        batches = f"{self.batches:,} batch" + ("es" if self.batches != 1 else "")
        requests = f"{self.requests:,} request" + ("s" if self.requests != 1 else "")
        head = f"{self.model}: {requests}, {batches}, ~{self.input_tokens:,} input tokens"
        if self.input_cost is None or self.price is None:
            return f"{head}, {_no_price(self.model)}"
        return f"{head}, ${self.input_cost:,.6f} at ${self.price.input:g} per 1M input tokens"


@dataclass(frozen=True, slots=True)
class Estimate:
    findings: Findings
    batches: int
    input_tokens: int
    price: ModelPrice | None  # the one model's; None when the file names several (see models)
    input_cost: float | None  # the sum of every model's; None if any model's price is unknown
    models: tuple[ModelEstimate, ...] = ()  # each model's share, in order of first use

    def as_json(self) -> dict[str, Any]:
        f = self.findings
        return {
            "ok": f.ok,
            "problem_count": f.problem_count,
            "requests": f.requests,
            "endpoint": f.endpoint,
            "model": f.model if len(self.models) <= 1 else None,  # several: each in models, as in summary.json
            "batches": self.batches,
            "estimated_input_tokens": self.input_tokens,
            "estimated_input_cost_usd": self.input_cost,
            "price_per_1m_input_tokens_usd": None if self.price is None else self.price.input,
            "models": [m.as_json() for m in self.models],
        }

    @property
    def model_names(self) -> list[str]:
        """The models the file names, in order of first use ("" for none found)."""
        return [m.model or "" for m in self.models] or [self.findings.model or ""]

    def text(self) -> str:
        """What sending the file would make and cost: one line, and one more per model if it names several."""
        batches = f"{self.batches:,} batch" + ("es" if self.batches != 1 else "")
        head = f"would make {batches}; estimated input tokens ~{self.input_tokens:,}"
        if len(self.models) > 1:
            return "\n".join([_several_head(head, self), *(f"  {m.text()}" for m in self.models)])
        if self.input_cost is None or self.price is None:
            return f"{head}; {_no_price(self.findings.model)}"
        return (
            f"{head}; estimated input cost ${self.input_cost:,.6f} at the batch price of "
            f"${self.price.input:g} per 1M input tokens (output tokens not included)"
        )


def _several_head(head: str, estimate: Estimate) -> str:
    if estimate.input_cost is None:
        unpriced = ", ".join(m.model or "" for m in estimate.models if m.input_cost is None)
        return f"{head}; estimated input cost unknown: no price known for {unpriced} (each model below)"
    cost = f"${estimate.input_cost:,.6f}"
    return f"{head}; estimated input cost {cost}, each model at its batch price (output tokens not included)"


def _no_price(model: str | None) -> str:
    return f'no price known for model {model}: add [prices."{model}"] to the config for a cost'


@dataclass(slots=True)
class Lane:
    """One model's requests as the splitter puts them in batches (all of a file's, unless split by model)."""

    parts: list[PartFile] = field(default_factory=list)
    requests: int = 0
    tokens: int = 0

    def add(self, path: Path, request: Request, batch_limits: BatchLimits) -> None:
        if not self.parts or not self.parts[-1].fits(request, batch_limits):
            self.parts.append(PartFile(path, request.line_no))
        self.parts[-1].add(request)
        self.requests, self.tokens = self.requests + 1, self.tokens + request.est_tokens


def estimate_file(path: Path, batch_limits: BatchLimits, prices: Mapping[str, ModelPrice]) -> Estimate:
    """Check ``path`` as intake does and count what it would make; nothing is written."""
    checker = line_checker(batch_limits)
    with gzip.GzipFile(path, "rb") if is_compressed(path.name) else open(path, "rb") as fh:
        lanes = lanes_of(path, iter_requests(fh, checker), batch_limits)
    return estimate_of(checker.finish(), lanes, prices)


def lanes_of(path: Path, requests: Iterable[Request], batch_limits: BatchLimits) -> dict[str, Lane]:
    """The batches ``requests`` make: one lane of them, or one per model when the file is split by
    model (split_by_model: each model's batches are its own), keyed by model ("" for one lane)."""
    lanes: dict[str, Lane] = {}
    for request in requests:
        lanes.setdefault(request.model if batch_limits.split_models else "", Lane()).add(path, request, batch_limits)
    return lanes


def estimate_of(findings: Findings, lanes: Mapping[str, Lane], prices: Mapping[str, ModelPrice]) -> Estimate:
    """The figures of ``lanes``, each model's at its price; the total is unknown if any price is."""
    models = tuple(_model_estimate(model or findings.model, lane, prices) for model, lane in lanes.items())
    batches, tokens = sum(m.batches for m in models), sum(m.input_tokens for m in models)
    if len(models) < 2:  # one model (or no request read): at its price
        price = price_for(findings.model, prices)
        return Estimate(findings, batches, tokens, price, estimate_cost(tokens, 0, price), models)
    costs = [m.input_cost for m in models]
    total = None if None in costs else round(sum(c for c in costs if c is not None), 9)
    return Estimate(findings, batches, tokens, None, total, models)


def _model_estimate(model: str | None, lane: Lane, prices: Mapping[str, ModelPrice]) -> ModelEstimate:
    price = price_for(model, prices)
    return ModelEstimate(
        model, lane.requests, len(lane.parts), lane.tokens, price, estimate_cost(lane.tokens, 0, price)
    )
