"""Cost estimates: what a training run and an hour of hosting cost, from a dated price table.

Pure: the functions take a ``PriceTable`` (see prices.py, which loads one) and the figures the
dataset checks computed, and return ``Estimate`` values; they read no file, clock or network.
Called by ``tunekeeper validate`` (the datasets table), and by plan rendering (the PR comment).

Decisions:

- Training is billed per 1M **billed** tokens (tokens of the training file x epochs), at the
  price of the job's base model (the root of a ``fromJob`` chain) and ``trainingType`` (default
  Standard). Validation files are not billed.
- Hosting a fine-tuned model is billed per deployment and hour, by base model and SKU, whatever
  its capacity; a base-model deployment has no hosting fee (it is billed per token).
- A model, training type or SKU the table does not list gives an estimate with no amount and a
  reason, never a guess: the plan then says "price unknown" instead of showing $0.
- Money is ``Decimal``, rounded to cents for display only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

TOKENS_PER_PRICE_UNIT = 1_000_000


@dataclass(frozen=True, slots=True)
class PriceTable:
    """List prices as of a date, from a source; built by prices.load_prices (or by tests)."""

    as_of: str  # ISO date the prices were read
    source: str  # where they were read (a URL), shown next to every estimate
    currency: str  # ISO 4217, e.g. USD
    training: Mapping[str, Mapping[str, Decimal]]  # base model -> trainingType -> price per 1M tokens
    hosting: Mapping[str, Mapping[str, Decimal]]  # base model -> ARM sku name -> price per deployment-hour
    origin: str = "built-in"  # "built-in", or the override file(s) merged over it

    @property
    def citation(self) -> str:
        """``prices as of 2025-11-01 (https://...)``: what every estimate rests on."""
        origin = "" if self.origin == "built-in" else f"; overridden by {self.origin}"
        return f"list prices as of {self.as_of}, {self.source}{origin}"


@dataclass(frozen=True, slots=True)
class Estimate:
    """A cost, or why there is none. ``amount`` is None when the table has no price for it."""

    amount: Decimal | None
    currency: str
    basis: str  # how it was computed, or why it could not be: "1.2M tokens x 25.00 USD / 1M tokens"

    @property
    def known(self) -> bool:
        return self.amount is not None

    def text(self) -> str:
        """``25.00 USD``, or ``price unknown``."""
        return "price unknown" if self.amount is None else money(self.amount, self.currency)


def money(amount: Decimal, currency: str) -> str:
    """``1,234.57 USD`` (cents, half up); amounts under a cent but above zero show as ``<0.01 USD``."""
    if Decimal(0) < amount < Decimal("0.005"):
        return f"<0.01 {currency}"
    return f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,} {currency}"


def price_text(price: Decimal) -> str:
    """A unit price with at least cents and no lost digits: ``25.00``, ``0.675``."""
    cents = price.quantize(Decimal("0.01"))
    return f"{cents}" if cents == price else f"{price.normalize()}"


def tokens_text(tokens: int) -> str:
    """``1,234,567`` tokens as people read them in a cost basis: ``1.23M``, ``45.6K``, ``812``."""
    if tokens >= 1_000_000:
        return f"{tokens / 1_000_000:.3g}M"
    if tokens >= 1_000:
        return f"{tokens / 1_000:.3g}K"
    return str(tokens)


def training_cost(prices: PriceTable, base_model: str | None, training_type: str | None,
                  billed_tokens: int) -> Estimate:
    """The cost of one training run of ``billed_tokens`` (tokens x epochs) on ``base_model``."""
    kind = training_type or "Standard"
    per_million = prices.training.get(base_model or "", {}).get(kind)
    if per_million is None:
        why = (f"no {kind} training price for {base_model}" if base_model in prices.training
               else f"no training price for {base_model or 'an unknown base model'}")
        return Estimate(None, prices.currency, why)
    amount = per_million * billed_tokens / TOKENS_PER_PRICE_UNIT
    return Estimate(
        amount,
        prices.currency,
        f"{tokens_text(billed_tokens)} billed tokens x {price_text(per_million)} {prices.currency} / 1M "
        f"({kind})",
    )


def hosting_cost(
    prices: PriceTable, base_model: str | None, sku: str, *, fine_tuned: bool = True
) -> Estimate:
    """The hourly cost of hosting one deployment of a model fine-tuned from ``base_model``."""
    if not fine_tuned:
        return Estimate(
            Decimal(0), prices.currency, "a base model has no hosting fee; it is billed per token"
        )
    per_hour = prices.hosting.get(base_model or "", {}).get(sku)
    if per_hour is None:
        return Estimate(
            None, prices.currency, f"no {sku} hosting price for {base_model or 'an unknown model'}"
        )
    return Estimate(per_hour, prices.currency, f"{price_text(per_hour)} {prices.currency} per hour ({sku})")
