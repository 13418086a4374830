"""The Kubernetes operator: Account, FineTuneJob and Deployment custom resources, reconciled by kopf.

An adapter like the CLI: ``handlers.py`` registers the kopf handlers, ``stack.py`` turns a
namespace's resources into a run of the reconcile core (``tunekeeper.reconcile.converge``),
``status.py`` writes its outcome into each resource's status, ``kube.py`` reads the Secrets and
ConfigMaps the resources name, ``metrics.py`` counts. Entry point: ``tunekeeper-operator``
(``__main__.py``). Nothing here plans or applies: the core does.
"""

from tunekeeper.operator.settings import OperatorSettings

__all__ = ["OperatorSettings"]
