"""Plans as text, JSON and Markdown: what ``tunekeeper plan`` prints and CI posts on a pull request.

Called by the CLI. Pure string building; secrets never appear (a URL's query string, where SAS
tokens live, renders as ``(sensitive)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import orjson

from tunekeeper.reconcile.model import SENSITIVE, Action, ActionKind, Plan, Reason, redact_url

__all__ = ["SENSITIVE", "redact_url", "render_plan", "summary"]


def render_plan(plan: Plan, fmt: Literal["text", "json", "markdown"] = "text") -> str:
    if fmt == "json":
        return orjson.dumps(plan.to_dict(), option=orjson.OPT_INDENT_2).decode()
    # a plan over several accounts (train in dev, serve from prod) names each action's account
    several = len({a.account for a in plan.actions} | {b.account for b in plan.blocked}) > 1
    rows = [(_symbol(plan, a), a.kind.value, f"{a.account}:{a.target}" if several else str(a.target),
             _detail(a), a.reason.value) for a in plan.actions]
    if fmt == "markdown":
        return _markdown(plan, rows)
    lines: list[str] = []
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(1, 4)]
        for row in rows:
            cells = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[1:4]))
            lines.append(f"{row[0]:>3} {cells}  {row[4]}")
    for b in plan.blocked:
        target = f"{b.account}:{b.target}" if several else str(b.target)
        lines.append(f"  ! blocked  {target}  {b.reason.value}: {b.message}")
    lines.extend(f"  note: {n}" for n in plan.notes)
    lines.extend(f"  warning: {w}" for w in plan.warnings)
    lines.append(summary(plan))
    return "\n".join(lines)


def summary(plan: Plan) -> str:
    """``Plan: 2 to create, 1 to change, 0 to delete.`` or ``No changes. 3 resources match.``"""
    add, change, delete = plan.counts()
    waits = sum(1 for a in plan.actions if not a.kind.changes)
    if not plan.actions:
        text = f"No changes. {plan.matched} {'resource matches' if plan.matched == 1 else 'resources match'}."
    else:
        text = f"Plan: {add} to create, {change} to change, {delete} to delete."
        evals = sum(1 for a in plan.actions if a.kind is ActionKind.EVALUATE_MODEL)
        if evals:
            text += f" {evals} to evaluate."
        if waits:
            text += f" {waits} to wait for."
    if plan.blocked:
        text += f" {len(plan.blocked)} blocked."
    return text


def _symbol(plan: Plan, action: Action) -> str:
    if action.reason in (Reason.REQUIRES_NEW_TRAINING, Reason.REPLACE_REQUESTED) and action.kind in (
        ActionKind.CANCEL_JOB, ActionKind.DELETE_MODEL, ActionKind.CREATE_JOB
    ):
        return "-/+"
    return action.kind.symbol


def _detail(action: Action) -> str:
    before: Mapping[str, object] = action.before or {}
    after: Mapping[str, object] = action.after or {}
    kind = action.kind
    if kind in (ActionKind.UPLOAD_FILE, ActionKind.IMPORT_FILE):
        digest = str(after.get("sha256", ""))
        return f"{after.get('source', '')}  sha256:{digest[:8]}…"
    if kind is ActionKind.CREATE_JOB:
        return f"{after.get('model')} ({after.get('method')})"
    if kind is ActionKind.DELETE_MODEL:
        results = before.get("result_files") or []
        extra = f" and {len(results)} results file{'s' if len(results) != 1 else ''}" if results else ""  # type: ignore[arg-type]
        return f"{before.get('job_id')} {before.get('model') or before.get('status', '')}{extra}".strip()
    if kind in (ActionKind.WAIT_FILE, ActionKind.WAIT_JOB, ActionKind.CANCEL_JOB, ActionKind.DELETE_FILE):
        ident = before.get("job_id") or before.get("file_id")
        return f"{ident} {before.get('status', '')}".strip()
    if kind is ActionKind.WAIT_DEPLOYMENT:
        return str(before.get("provisioning_state", ""))
    if kind is ActionKind.EVALUATE_MODEL:
        return f"{after.get('model')} against {after.get('eval_file')}"
    if kind is ActionKind.CREATE_DEPLOYMENT:
        return f"{after.get('model')} {after.get('sku')} x{after.get('capacity')}"
    if kind is ActionKind.DELETE_DEPLOYMENT:
        return f"{before.get('model')} {before.get('sku')} x{before.get('capacity')}"
    changes = [f"{k} {before.get(k)} -> {after.get(k)}" for k in ("model", "sku", "capacity")
               if k in after and before.get(k) != after.get(k)]
    return ", ".join(changes) or "tags"


def _markdown(plan: Plan, rows: list[tuple[str, str, str, str, str]]) -> str:
    lines = [f"**{summary(plan)}**", ""]
    if rows:
        lines += ["| | action | resource | detail | reason |", "|---|---|---|---|---|"]
        for sym, kind, target, detail, reason in rows:
            lines.append(f"| `{sym}` | {kind} | `{target}` | {_md(detail)} | {reason} |")
    if plan.blocked:
        lines += ["", "Blocked:", ""]
        lines += [f"- `{b.target}`: {b.reason.value}: {_md(b.message)}" for b in plan.blocked]
    if plan.notes or plan.warnings:
        lines += [""]
        lines += [f"- note: {_md(n)}" for n in plan.notes]
        lines += [f"- :warning: {_md(w)}" for w in plan.warnings]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")
