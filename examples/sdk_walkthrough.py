"""Fine-tune, deploy and chat with a model through the official Python SDKs, end to end.

This is the Microsoft Learn walk-through "Customize a model with fine-tuning" (Python SDK
tab), as one runnable script. Against the tunekeeper emulator only the endpoint and the key
differ from what you would use against Azure:

    tunekeeper emulator --speed 100          # prints the variables below; export them
    export AZURE_OPENAI_ENDPOINT=http://127.0.0.1:8080
    export AZURE_OPENAI_API_KEY=emulator-key
    export OPENAI_API_VERSION=2025-04-01-preview
    export AZURE_ARM_BASE_URL=http://127.0.0.1:8080
    export AZURE_SUBSCRIPTION_ID=00000000-0000-0000-0000-000000000000
    export AZURE_RESOURCE_GROUP=tunekeeper
    export AZURE_OPENAI_ACCOUNT=emulator
    python examples/sdk_walkthrough.py [--workdir DIR] [--poll-seconds N] [--keep]

Against Azure, point AZURE_OPENAI_ENDPOINT at your resource (https://<name>.openai.azure.com),
leave AZURE_ARM_BASE_URL unset (https://management.azure.com), and set TEMP_AUTH_TOKEN to an
Entra ID token for ARM (``az account get-access-token --query accessToken -o tsv``) as the
Learn page does; without it the script asks azure-identity's DefaultAzureCredential.

Steps, as on the Learn page:
 1. write a Clippy-style training set and validation set (JSONL, 12 examples each, with a
    UTF-8 byte order mark as some editors save them) and upload both (purpose fine-tune);
 2. create a fine-tuning job on gpt-4.1-2025-04-14 with seed=105; retrieve it until it ends;
 3. list its events and checkpoints; download results.csv from the job's result_files;
 4. deploy the fine-tuned model through ARM with the 2024-10-01 request the page shows
    (sku "standard", capacity 1, model format OpenAI, version "1") and wait for it;
 5. chat with the deployment (the emulator answers with the closest training reply);
 6. clean up: delete the deployment, the job (which removes the fine-tuned model) and the files.

``main()`` returns what happened, so tests/integration/test_seed_walkthrough.py runs this very
script against an in-process emulator, with a ``wait`` that moves the emulator's clock instead
of sleeping. This script imports nothing from tunekeeper: it is what a user would write.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests
from openai import AzureOpenAI

BASE_MODEL = "gpt-4.1-2025-04-14"
SEED = 105
ARM_API_VERSION = "2024-10-01"  # the version the Learn page's deployment request uses
DEPLOYMENT_NAME = "gpt-41-ft-walkthrough"
SYSTEM = "Clippy is a factual chatbot that is also sarcastic."
TERMINAL = ("succeeded", "failed", "cancelled")
LOOPBACK_DEV_TOKEN = "tunekeeper-emulator-dev-token"  # any bearer token; the emulator accepts it

TRAINING = [
    ("Who wrote 'Romeo and Juliet'?", "William Shakespeare. I assumed everyone had that one memorised by now."),
    ("How far is the Moon from Earth?", "About 384,400 km on average. Give or take a very long walk."),
    ("What is the boiling point of water at sea level?", "100 degrees Celsius. Kettles have known for ages."),
    ("Which planet is the largest?", "Jupiter. It is hard to miss, being enormous and all."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci. Not, as rumours go, a paperclip."),
    ("How many continents are there?", "Seven, unless your geography teacher had strong opinions."),
    ("What gas do plants absorb?", "Carbon dioxide. They are tidier than most of us."),
    ("Who was the first person on the Moon?", "Neil Armstrong, in 1969. One small step, one big brag."),
    ("What is the speed of light?", "About 299,792 km per second. Faster than your download, anyway."),
    ("What is the chemical symbol for gold?", "Au. From the Latin aurum, for those keeping score."),
    ("How many legs does a spider have?", "Eight. Count them if you dare."),
    ("Which ocean is the largest?", "The Pacific. Bring a bigger boat."),
]
VALIDATION = [
    ("Who discovered gravity?", "Isaac Newton described it. Apples were involved, allegedly."),
    ("What is the tallest mountain?", "Mount Everest, at 8,849 m. A brisk stroll, really."),
    ("How many days are in a leap year?", "366. The calendar likes a bonus day now and then."),
    ("What is the capital of Japan?", "Tokyo. Not Kyoto, although Kyoto used to be."),
    ("Who invented the telephone?", "Alexander Graham Bell is usually credited. Call him, oh wait."),
    ("What is H2O?", "Water. Two hydrogens, one oxygen, zero surprises."),
    ("What is the smallest prime number?", "Two. The only even one, showing off."),
    ("How many hours are in a day?", "24. Even if Mondays feel longer."),
    ("Which animal is the largest?", "The blue whale. It wins by a lot."),
    ("What language has the most native speakers?", "Mandarin Chinese. By a comfortable margin."),
    ("Who developed the theory of relativity?", "Albert Einstein. The hair was a bonus."),
    ("What is the freezing point of water?", "0 degrees Celsius. Ice, ice, baby."),
]


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the walk-through talks to; read from the environment `tunekeeper emulator` prints."""

    endpoint: str
    api_key: str
    api_version: str
    arm_base_url: str
    subscription_id: str
    resource_group: str
    account: str
    arm_token: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        required = ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_SUBSCRIPTION_ID",
                    "AZURE_RESOURCE_GROUP", "AZURE_OPENAI_ACCOUNT")
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise SystemExit(f"error: set {', '.join(missing)} (tunekeeper emulator prints them)")
        return cls(
            endpoint=env["AZURE_OPENAI_ENDPOINT"].rstrip("/"),
            api_key=env["AZURE_OPENAI_API_KEY"],
            api_version=env.get("OPENAI_API_VERSION") or "2025-04-01-preview",
            arm_base_url=(env.get("AZURE_ARM_BASE_URL") or "https://management.azure.com").rstrip("/"),
            subscription_id=env["AZURE_SUBSCRIPTION_ID"],
            resource_group=env["AZURE_RESOURCE_GROUP"],
            account=env["AZURE_OPENAI_ACCOUNT"],
            arm_token=env.get("TEMP_AUTH_TOKEN") or None,
        )


@dataclass(slots=True)
class Walkthrough:
    """What the walk-through did and saw, for the reader and for the test."""

    training_file_id: str = ""
    validation_file_id: str = ""
    job_id: str = ""
    status: str = ""
    fine_tuned_model: str = ""
    event_messages: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    results_csv: Path | None = None
    deployment: dict[str, object] = field(default_factory=dict)
    question: str = ""
    answer: str = ""
    expected_answer: str = ""
    cleaned_up: bool = False


def write_datasets(workdir: Path) -> tuple[Path, Path]:
    """The Clippy training and validation sets, saved with a byte order mark."""
    workdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, pairs in (("training_set.jsonl", TRAINING), ("validation_set.jsonl", VALIDATION)):
        lines = [json.dumps({"messages": [{"role": "system", "content": SYSTEM},
                                          {"role": "user", "content": q},
                                          {"role": "assistant", "content": a}]}) for q, a in pairs]
        path = workdir / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
        paths.append(path)
    return paths[0], paths[1]


def _arm_token(settings: Settings) -> str:
    if settings.arm_token:
        return settings.arm_token
    host = urlsplit(settings.arm_base_url).hostname or ""
    if host in ("localhost", "127.0.0.1", "::1"):
        return LOOPBACK_DEV_TOKEN
    from azure.identity import DefaultAzureCredential  # only needed against Azure

    return DefaultAzureCredential().get_token("https://management.azure.com/.default").token


def main(argv: list[str] | None = None, *, env: Mapping[str, str] | None = None,
         wait: Callable[[float], None] = time.sleep, say: Callable[[str], None] = print) -> Walkthrough:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--workdir", type=Path, default=Path("walkthrough-output"),
                        help="where the datasets and results.csv are written")
    parser.add_argument("--poll-seconds", type=float, default=10.0, help="pause between status checks")
    parser.add_argument("--keep", action="store_true", help="do not delete the deployment, job and files")
    args = parser.parse_args(argv)
    settings = Settings.from_env(os.environ if env is None else env)
    seen = Walkthrough()

    client = AzureOpenAI(azure_endpoint=settings.endpoint, api_key=settings.api_key,
                         api_version=settings.api_version)
    arm = requests.Session()
    arm.headers.update({"Authorization": f"Bearer {_arm_token(settings)}", "Content-Type": "application/json"})
    deployment_url = (f"{settings.arm_base_url}/subscriptions/{settings.subscription_id}/resourceGroups/"
                      f"{settings.resource_group}/providers/Microsoft.CognitiveServices/accounts/"
                      f"{settings.account}/deployments/{DEPLOYMENT_NAME}")
    deploy_params = {"api-version": ARM_API_VERSION}

    # 1. Upload the training and validation files.
    training_path, validation_path = write_datasets(args.workdir)
    with training_path.open("rb") as training:
        seen.training_file_id = client.files.create(file=training, purpose="fine-tune").id
    with validation_path.open("rb") as validation:
        seen.validation_file_id = client.files.create(file=validation, purpose="fine-tune").id
    say(f"Training file ID: {seen.training_file_id}")
    say(f"Validation file ID: {seen.validation_file_id}")
    for file_id in (seen.training_file_id, seen.validation_file_id):
        while (status := client.files.retrieve(file_id).status) not in ("processed", "error"):
            wait(args.poll_seconds)
        if status == "error":
            raise SystemExit(f"error: file {file_id} was rejected: {client.files.retrieve(file_id).status_details}")

    # 2. Create the fine-tuning job and follow it.
    job = client.fine_tuning.jobs.create(training_file=seen.training_file_id,
                                         validation_file=seen.validation_file_id,
                                         model=BASE_MODEL, seed=SEED)
    seen.job_id = job.id
    say(f"Job ID: {job.id}  Status: {job.status}")
    while job.status not in TERMINAL:
        wait(args.poll_seconds)
        job = client.fine_tuning.jobs.retrieve(seen.job_id)
        say(f"Status: {job.status}")
    seen.status = job.status
    if job.status != "succeeded":
        raise SystemExit(f"error: the job ended {job.status}: {job.error}")
    seen.fine_tuned_model = job.fine_tuned_model or ""
    say(f"Fine-tuned model: {seen.fine_tuned_model}")

    # 3. Events, checkpoints and the results file.
    events = client.fine_tuning.jobs.list_events(fine_tuning_job_id=seen.job_id, limit=10)
    seen.event_messages = [e.message for e in events.data]
    for message in seen.event_messages:
        say(f"  event: {message}")
    checkpoints = client.fine_tuning.jobs.checkpoints.list(seen.job_id)
    seen.checkpoints = [c.fine_tuned_model_checkpoint for c in checkpoints.data]
    for checkpoint in checkpoints.data:
        say(f"  checkpoint: {checkpoint.id} step {checkpoint.step_number} {checkpoint.fine_tuned_model_checkpoint}")
    result_file_id = (job.result_files or [""])[0]
    result_file = client.files.retrieve(result_file_id)
    seen.results_csv = args.workdir / result_file.filename
    seen.results_csv.write_bytes(client.files.content(result_file_id).read())
    say(f"Downloaded {result_file.filename} to {seen.results_csv}")

    # 4. Deploy the fine-tuned model through ARM (the Learn page's REST request).
    deploy_data = {
        "sku": {"name": "standard", "capacity": 1},
        "properties": {"model": {"format": "OpenAI", "name": seen.fine_tuned_model, "version": "1"}},
    }
    created = arm.put(deployment_url, params=deploy_params, data=json.dumps(deploy_data), timeout=60)
    say(f"Creating a new deployment... {created.status_code}")
    if created.status_code not in (200, 201):
        raise SystemExit(f"error: deployment refused: {created.status_code} {created.text}")
    deployment = created.json()
    while deployment["properties"]["provisioningState"] not in ("Succeeded", "Failed", "Canceled"):
        wait(float(created.headers.get("Retry-After", args.poll_seconds)))
        deployment = arm.get(deployment_url, params=deploy_params, timeout=60).json()
    seen.deployment = deployment
    say(f"Deployment {DEPLOYMENT_NAME}: {deployment['properties']['provisioningState']}")

    # 5. Use the deployed model.
    question, seen.expected_answer = TRAINING[0]
    seen.question = question
    response = client.chat.completions.create(
        model=DEPLOYMENT_NAME,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
    )
    seen.answer = response.choices[0].message.content or ""
    say(f"Q: {question}\nA: {seen.answer}")

    # 6. Clean up: deployment, then the job (and with it the model), then the files.
    if not args.keep:
        deleted = arm.delete(deployment_url, params=deploy_params, timeout=60)
        while arm.get(deployment_url, params=deploy_params, timeout=60).status_code != 404:
            wait(float(deleted.headers.get("Retry-After", args.poll_seconds)))
        say(f"Deleted deployment {DEPLOYMENT_NAME}")
        job_url = f"{settings.endpoint}/openai/fine_tuning/jobs/{seen.job_id}"
        gone = requests.delete(job_url, params={"api-version": settings.api_version},
                               headers={"api-key": settings.api_key}, timeout=60)
        if gone.status_code not in (200, 204):
            raise SystemExit(f"error: deleting job {seen.job_id} failed: {gone.status_code} {gone.text}")
        say(f"Deleted job {seen.job_id} and its model {seen.fine_tuned_model}")
        for file_id in (seen.training_file_id, seen.validation_file_id, result_file_id):
            client.files.delete(file_id)
        say("Deleted the training, validation and results files")
        seen.cleaned_up = True
    client.close()
    arm.close()
    return seen


if __name__ == "__main__":
    main(sys.argv[1:])
