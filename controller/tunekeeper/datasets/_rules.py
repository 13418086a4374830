"""The dataset rule table: every problem the dataset checks can report, in one place.

Used by the scanner and the example checks in this package (and by nothing else), so that each
rule has one stable code, one severity, one message template and one hint. A check names the
values it actually tested as template arguments; the message can therefore never describe a
different value than the one that was checked.

This module must not read files or decide anything: it only turns (rule, where, values) into a
``Diagnostic``.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from tunekeeper.diagnostics import Diagnostic, Severity


@dataclass(frozen=True, slots=True)
class Rule:
    code: str  # stable id, e.g. "TK-D012"; never reused for another meaning
    severity: Severity
    message: str  # str.format template; its fields are the values the check tested
    hint: str | None  # str.format template too (may use the same fields), or None


def _rule(code: str, severity: Severity, message: str, hint: str | None) -> Rule:
    return Rule(code=code, severity=severity, message=message, hint=hint)


RULES: dict[str, Rule] = {
    rule.code: rule
    for rule in (
        # --- the file as a whole (line 0) ---------------------------------------------------
        _rule("TK-D001", "error", "cannot read the file: {reason}", "check the path and its permissions"),
        _rule(
            "TK-D002",
            "error",
            "file is {size} bytes; training files must be smaller than {limit} bytes (512 MB)",
            "split the data or remove examples; the file was not checked further",
        ),
        _rule(
            "TK-D003",
            "warning",
            "file has no UTF-8 byte order mark (BOM)",
            "Azure OpenAI expects one; `tunekeeper apply` adds it on upload, so nothing needs doing "
            "unless you upload this file by other means",
        ),
        _rule(
            "TK-D004",
            "error",
            "file has {examples} example(s); fine-tuning needs at least {minimum}",
            "add examples: {minimum} is the minimum the service accepts",
        ),
        _rule(
            "TK-D005",
            "warning",
            "file has {examples} examples; at least {recommended} well-crafted examples are recommended",
            "training on fewer examples rarely changes the model's behaviour",
        ),
        # --- one line -----------------------------------------------------------------------
        _rule(
            "TK-D010", "error", "line is not valid UTF-8 (byte {byte} is {value})", "save the file as UTF-8"
        ),
        _rule(
            "TK-D011",
            "error",
            "line is not valid JSON: {reason}",
            "each line must hold one complete JSON object; check quotes, commas and brackets",
        ),
        _rule(
            "TK-D012",
            "error",
            "line holds a JSON {kind}, not an object",
            "each line must be one JSON object such as {example}",
        ),
        _rule(
            "TK-D013",
            "warning",
            "line is blank",
            "remove blank lines: every line of a JSONL training file should be one example",
        ),
        _rule(
            "TK-D014",
            "warning",
            "example repeats line {first} exactly",
            "remove duplicates: they over-weight one example in training",
        ),
        _rule(
            "TK-D015",
            "error",
            "example has {tokens} tokens, more than the {limit}-token context of {model}",
            "shorten or split the example; tokens beyond the context are not trained on",
        ),
        _rule(
            "TK-D016",
            "error",
            "example has at least {tokens} tokens (counting stopped there), more than "
            "the {limit}-token context of {model}",
            "shorten or split the example; tokens beyond the context are not trained on",
        ),
        _rule(
            "TK-D017",
            "error",
            "line is {size} bytes, longer than the {limit} bytes one example may take here; it was not read",
            "split the example; put images at a URL rather than inline as base64 data",
        ),
        # --- chat messages (supervised, DPO input and outputs, reinforcement) ---------------
        _rule(
            "TK-D020",
            "error",
            "{field} is missing",
            "supervised and reinforcement examples look like {example}",
        ),
        _rule(
            "TK-D021",
            "error",
            "{field} must be a non-empty list of messages, got {value}",
            'write {field} as [{{"role": "user", "content": "..."}}, ...]',
        ),
        _rule(
            "TK-D022",
            "error",
            "{field} must be a message object, got {value}",
            'a message looks like {{"role": "user", "content": "..."}}',
        ),
        _rule("TK-D023", "error", "{field} is missing", "every message needs a role: {roles}"),
        _rule("TK-D024", "error", "{field} must be one of {roles}, got {value}", "use one of {roles}"),
        _rule(
            "TK-D025",
            "error",
            "{field} is missing",
            'give the message a "content" string (assistant messages with tool_calls may omit it)',
        ),
        _rule(
            "TK-D026",
            "error",
            "{field} must be a string or a list of content parts, got {value}",
            'use a string, or parts like [{{"type": "text", "text": "..."}}]',
        ),
        _rule(
            "TK-D027",
            "error",
            "{field} must be a content part object, got {value}",
            'a part looks like {{"type": "text", "text": "..."}}',
        ),
        _rule("TK-D028", "error", "{field} must be one of {types}, got {value}", "use {types}"),
        _rule(
            "TK-D029",
            "error",
            "{field} must be a string, got {value}",
            'text parts look like {{"type": "text", "text": "..."}}',
        ),
        _rule(
            "TK-D030",
            "error",
            '{field} must be an object with a "url" string, got {value}',
            'image parts look like {{"type": "image_url", "image_url": {{"url": "https://..."}}}}',
        ),
        _rule(
            "TK-D031",
            "error",
            "{field} must be an http(s) URL or a data: URI, got {value}",
            "link the image over https, or inline it as data:image/jpeg;base64,...",
        ),
        _rule(
            "TK-D032",
            "error",
            "{field} has media type {value}; images must be one of {types}",
            "convert the image to JPEG, PNG or WEBP",
        ),
        _rule(
            "TK-D033",
            "error",
            "{field} must be one of {details}, got {value}",
            "use one of {details}, or leave detail out",
        ),
        _rule(
            "TK-D034",
            "error",
            "{field} is an image in a {role} message; images are allowed in user messages only",
            "move the image into a user message",
        ),
        _rule(
            "TK-D035",
            "error",
            "{field} is set on a {role} message; weight applies to assistant messages only",
            "remove the weight, or move it to an assistant message",
        ),
        _rule(
            "TK-D036",
            "error",
            "{field} must be 0 or 1, got {value}",
            "use 1 to train on this message and 0 to skip it",
        ),
        _rule(
            "TK-D037",
            "error",
            "example has no trainable assistant message",
            'add an assistant message without "weight": 0 (the model learns from assistant messages)',
        ),
        _rule(
            "TK-D038",
            "warning",
            "{field} is not a known message field and is ignored",
            "known fields: {known}",
        ),
        _rule(
            "TK-D039",
            "error",
            "{field} is empty: the assistant message has no content and no tool calls",
            'give the answer as "content", or add tool_calls',
        ),
        _rule("TK-D040", "warning", "{field} is empty", "remove the message or give it content"),
        _rule("TK-D041", "error", "{field} must be a string, got {value}", "{hint}"),
        _rule(
            "TK-D042",
            "error",
            "{field} is set on a {role} message; only assistant messages make tool calls",
            "move the tool calls to an assistant message",
        ),
        _rule(
            "TK-D043",
            "error",
            "{field} must be a non-empty list of tool calls, got {value}",
            'tool calls look like [{{"id": "call_1", "type": "function", "function": '
            '{{"name": "...", "arguments": "{{}}"}}}}]',
        ),
        _rule(
            "TK-D044",
            "error",
            "{field} must be an object, got {value}",
            'tool calls look like {{"id": "call_1", "type": "function", "function": '
            '{{"name": "...", "arguments": "{{}}"}}}}',
        ),
        _rule("TK-D045", "error", '{field} must be "function", got {value}', 'set "type": "function"'),
        _rule(
            "TK-D046", "error", "{field} is missing", "every tool message needs the id of the call it answers"
        ),
        _rule(
            "TK-D047",
            "warning",
            "{field} is {value}, which no earlier assistant tool call has as its id",
            "answer a call made earlier in the same example",
        ),
        _rule(
            "TK-D048",
            "error",
            "{field} must be a list, got {value}",
            'tools look like [{{"type": "function", "function": {{"name": "...", "parameters": {{...}}}}}}]',
        ),
        _rule("TK-D049", "error", "{field} must be true or false, got {value}", "use true or false"),
        _rule(
            "TK-D050",
            "warning",
            "{field} is not a known field of a {method} example and is ignored",
            "known fields: {known}",
        ),
        # --- DPO ----------------------------------------------------------------------------
        _rule("TK-D060", "error", "{field} is missing", "DPO examples look like {example}"),
        _rule(
            "TK-D061", "error", "{field} must be an object, got {value}", "DPO examples look like {example}"
        ),
        _rule(
            "TK-D062",
            "error",
            "{field} must end with a user message, got a {role} message",
            "end the input with the user turn the outputs answer",
        ),
        _rule(
            "TK-D063",
            "error",
            "{field} must be a list holding exactly one assistant message, got {value}",
            'write {field} as [{{"role": "assistant", "content": "..."}}]',
        ),
        _rule(
            "TK-D064",
            "error",
            "{field} must be an assistant message, got role {value}",
            "outputs are the assistant's answers to the input",
        ),
        _rule(
            "TK-D065",
            "warning",
            "preferred_output and non_preferred_output are identical",
            "a preference pair teaches nothing when both answers are the same",
        ),
        # --- reinforcement ------------------------------------------------------------------
        _rule(
            "TK-D070",
            "error",
            "{field} must end with a user message, got a {role} message",
            "reinforcement examples hold the prompt only; the model writes the answer and the grader "
            "scores it",
        ),
        _rule(
            "TK-D071",
            "warning",
            "example has no reference fields besides {known}",
            'add the fields your grader reads, e.g. "reference_answer"',
        ),
        _rule(
            "TK-D072",
            "warning",
            "example's reference fields {fields} differ from line {first}'s {expected}",
            "give every example the same reference fields, so the grader finds them all",
        ),
        # --- eval files (a Deployment's gates.evalFile) --------------------------------------
        _rule("TK-E001", "error", "file has no eval examples", "write one example per line: {example}"),
        _rule(
            "TK-E002",
            "error",
            "{field} must be the expected answer, an assistant message; got a {role} message",
            'end each example with {{"role": "assistant", "content": "<text the answer must contain>"}}',
        ),
        _rule(
            "TK-E003",
            "error",
            "{field} is empty: the expected answer has no text",
            "an empty expected answer passes against any model; write the text the answer must contain",
        ),
        _rule(
            "TK-E004",
            "error",
            "example has no user message before the expected answer",
            "the candidate is asked the messages before the last one; include the user's question",
        ),
        _rule(
            "TK-E005",
            "error",
            "eval file is {size} bytes; eval files must be smaller than {limit} bytes",
            "each example is sent to the candidate model while it is deployed: keep the gate to a few "
            "hundred examples; the file was not checked further",
        ),
        _rule(
            "TK-E010",
            "error",
            "system message {value} differs from the one {job} was trained with ({where}: {expected})",
            "evaluate the model with the system message it was trained with, or the gate measures "
            "prompts it never saw; copy it from {where}",
        ),
        _rule(
            "TK-E011",
            "error",
            "example has no system message, but {job} was trained with one ({where}: {expected})",
            'start the example with the training system message: {{"role": "system", "content": ...}}',
        ),
        _rule(
            "TK-E012",
            "error",
            "system message {value} is not in the training data of {job}, which has none ({where})",
            "remove the system message, as the training examples have none",
        ),
    )
}


def show(value: object, limit: int = 60) -> str:
    """Render a checked value for a message: as JSON, cut to ``limit`` characters."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def kind_of(value: object) -> str:
    """The JSON kind of a parsed value, as people say it: object, list, string, number, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def diagnose(code: str, path: str, line: int, *, column: int = 0, field: str | None = None,
             **values: object) -> Diagnostic:
    """Build the diagnostic for rule ``code`` from the values the check tested."""
    rule = RULES[code]
    if field is not None:
        values["field"] = field
    return Diagnostic(
        path=path,
        line=line,
        column=column,
        severity=rule.severity,
        message=rule.message.format(**values),
        hint=rule.hint.format(**values) if rule.hint is not None else None,
        field_path=field,
        code=code,
    )
