"""The emulator's model catalog: which base models exist, which can be fine-tuned, with which
methods, and which deployment SKUs each accepts.

Modelled on Azure OpenAI's published fine-tuning availability (late 2025); it is an
emulation, not a live list. Both the data plane (``/models``, job creation) and ARM
(deployment validation) read this one table.
"""

from __future__ import annotations

from dataclasses import dataclass

YEAR = 365 * 24 * 3600
STANDARD_SKUS = frozenset({"Standard", "GlobalStandard", "DataZoneStandard", "Developer"})
PROVISIONED_SKUS = frozenset({"ProvisionedManaged", "GlobalProvisionedManaged", "DataZoneProvisionedManaged"})
# What a fine-tuned model (or checkpoint) can be deployed with.
FINE_TUNED_SKUS = frozenset({"Standard", "GlobalStandard", "Developer", "ProvisionedManaged",
                             "GlobalProvisionedManaged"})


@dataclass(frozen=True, slots=True)
class BaseModel:
    id: str  # the data-plane id, e.g. "gpt-4.1-2025-04-14"
    name: str  # the ARM model name, e.g. "gpt-4.1"
    version: str  # the ARM model version, e.g. "2025-04-14"
    fine_tune_methods: frozenset[str]  # empty: cannot be fine-tuned
    context_tokens: int  # longest training example accepted
    skus: frozenset[str] = STANDARD_SKUS | PROVISIONED_SKUS
    chat: bool = True
    created_at: int = 1_700_000_000
    lifecycle_status: str = "generally-available"

    @property
    def can_fine_tune(self) -> bool:
        return bool(self.fine_tune_methods)

    @property
    def deprecation(self) -> dict[str, int]:
        """When the model retires (unix times): ``inference`` two years after its release, and
        ``fine_tune`` (for a model that can be fine-tuned) eighteen months after. The data-plane
        and ARM model lists both show these dates."""
        dates = {"inference": self.created_at + 2 * YEAR}
        if self.can_fine_tune:
            dates["fine_tune"] = self.created_at + YEAR + YEAR // 2
        return dates


def fine_tuned_deprecation(finished_at: float) -> dict[str, int]:
    """A fine-tuned model retires from inference a year after its job finished."""
    return {"inference": int(finished_at) + YEAR}


_SFT_DPO = frozenset({"supervised", "dpo"})

MODELS: tuple[BaseModel, ...] = (
    BaseModel("gpt-4.1-2025-04-14", "gpt-4.1", "2025-04-14", _SFT_DPO, 65_536, created_at=1_744_588_800),
    BaseModel(
        "gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", "2025-04-14", _SFT_DPO, 65_536, created_at=1_744_588_800
    ),
    BaseModel(
        "gpt-4.1-nano-2025-04-14",
        "gpt-4.1-nano",
        "2025-04-14",
        frozenset({"supervised"}),
        32_768,
        created_at=1_744_588_800,
    ),
    BaseModel("gpt-4o-2024-08-06", "gpt-4o", "2024-08-06", _SFT_DPO, 65_536, created_at=1_722_902_400),
    BaseModel(
        "gpt-4o-mini-2024-07-18", "gpt-4o-mini", "2024-07-18", _SFT_DPO, 65_536, created_at=1_721_260_800
    ),
    BaseModel(
        "gpt-35-turbo-0125",
        "gpt-35-turbo",
        "0125",
        frozenset({"supervised"}),
        16_385,
        created_at=1_706_140_800,
    ),
    BaseModel(
        "o4-mini-2025-04-16",
        "o4-mini",
        "2025-04-16",
        frozenset({"reinforcement"}),
        65_536,
        skus=frozenset({"GlobalStandard", "Developer"}),
        created_at=1_744_761_600,
        lifecycle_status="preview",
    ),
    # Present but not fine-tunable.
    BaseModel("gpt-4o-2024-05-13", "gpt-4o", "2024-05-13", frozenset(), 128_000, created_at=1_715_558_400),
    BaseModel(
        "gpt-4-0613",
        "gpt-4",
        "0613",
        frozenset(),
        8_192,
        created_at=1_686_614_400,
        lifecycle_status="deprecating",
    ),
    BaseModel(
        "text-embedding-3-small",
        "text-embedding-3-small",
        "1",
        frozenset(),
        8_191,
        chat=False,
        skus=frozenset({"Standard", "GlobalStandard"}),
        created_at=1_706_140_800,
    ),
)

_BY_ID = {m.id: m for m in MODELS}
_BY_NAME_VERSION = {(m.name, m.version): m for m in MODELS}


def find(model_id: str) -> BaseModel | None:
    """A base model by data-plane id ("gpt-4.1-2025-04-14")."""
    return _BY_ID.get(model_id)


def find_arm(name: str, version: str | None) -> BaseModel | None:
    """A base model by ARM name and version; without a version, the newest of that name."""
    if version:
        return _BY_NAME_VERSION.get((name, version))
    candidates = [m for m in MODELS if m.name == name]
    return max(candidates, key=lambda m: m.version) if candidates else None
