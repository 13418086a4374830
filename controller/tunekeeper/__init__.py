"""tunekeeper: fine-tuning on Azure OpenAI, managed as code.

Teams commit ``FineTuneJob`` and ``Deployment`` manifests; tunekeeper validates their data,
plans the changes against what the account holds, and applies them safely. See README.md.
"""

__version__ = "0.1.0"
