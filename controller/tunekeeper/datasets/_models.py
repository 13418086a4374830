"""Context limits of the base models that can be fine-tuned, for the dataset context check.

Read by ``validate_dataset`` / ``validate_bytes`` when they are given a model; kept apart from
``_tokens`` so that knowing a limit never loads the tokenizer. Pure data and one lookup: it must
not import anything heavy.
"""

from __future__ import annotations

DEFAULT_CONTEXT = 65536
# Training context per base model, longest prefix first wins. A fine-tuned model's name starts
# with its base model's ("gpt-4.1-2025-04-14.ft-abc"), so it finds its base's row.
CONTEXT_LIMITS: tuple[tuple[str, int], ...] = (
    ("gpt-4.1-nano", 32768),
    ("gpt-4.1-mini", 65536),
    ("gpt-4.1", 65536),
    ("gpt-4o-mini", 65536),
    ("gpt-4o", 65536),
    ("gpt-35-turbo-0125", 16385),
    ("gpt-35-turbo", 16385),
    ("o4-mini", 65536),
)


def context_limit(model: str | None) -> tuple[int, str]:
    """(context tokens, how to name the model in a message) for a base or fine-tuned model name."""
    if not model:
        return DEFAULT_CONTEXT, "an unspecified model"
    base = model.split(".ft", 1)[0].lower()
    for prefix, limit in CONTEXT_LIMITS:
        if base == prefix or base.startswith((prefix + "-", prefix + ".")):
            return limit, model
    return DEFAULT_CONTEXT, f"{model} (unknown model; {DEFAULT_CONTEXT} assumed)"
