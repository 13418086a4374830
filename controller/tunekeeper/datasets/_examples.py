"""Checks for one parsed example (one JSONL line) of each training method.

Called by ``_scan`` for every line that parsed as a JSON object. ``check_example`` is the
authoritative check: it reports every problem of the example through the rule table and returns
the example's figures. ``plain_figures`` (``plain_chat`` for a raw line) is a shortcut for the
common, plainly valid supervised example (role/content string messages, optional ``weight``):
it either returns exactly the figures ``check_example`` would, or ``None``, and then the full
check runs. Nothing here reads
files, counts tokens exactly or keeps state between examples.

Figures of an example (``Figures``):

- ``turns``: trainable assistant messages (no ``weight`` or ``weight: 1``); for DPO the preferred
  output counts as one.
- ``estimate``: estimated tokens, the cookbook's message overhead (3 per message, about 1 for the
  role, 3 to prime the reply) plus a quarter of the characters of every text, tool call and tool
  definition, plus ``IMAGE_TOKENS`` per image.
- ``bound``: an upper limit of the exact token count, with no tokenizer: each token covers at
  least one byte, so the texts cannot have more tokens than the line has bytes; image URLs are
  taken out of the bytes and ``IMAGE_TOKENS`` put in, and 4 tokens per message and 3 for the reply
  are added. Only when ``bound`` exceeds the context does the scanner count tokens exactly.
"""

from __future__ import annotations

from typing import Any

import orjson

from tunekeeper.datasets._rules import RULES, diagnose, show
from tunekeeper.diagnostics import Diagnostic

# Tokens allowed per image. Images are not tokenized from their URL: the service bills a 512x512
# tile at 170 tokens plus 85 base, and a high-detail 1024x1024 image at 85 + 4 * 170 = 765. We
# count every image at that typical high-detail figure, and "detail": "low" images at 85.
IMAGE_TOKENS = 765
IMAGE_TOKENS_LOW = 85
MESSAGE_TOKENS = 4  # 3 per message (cookbook) + 1 reserve for a "name"
REPLY_TOKENS = 3  # every reply is primed with <|start|>assistant<|message|>

ROLES = ("system", "user", "assistant", "tool")
ROLES_TEXT = ", ".join(ROLES)
MESSAGE_FIELDS = ("role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call")
MESSAGE_FIELDS_TEXT = ", ".join(MESSAGE_FIELDS)
PART_TYPES = '"text" or "image_url"'
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp")
IMAGE_MEDIA_TYPES_TEXT = ", ".join(IMAGE_MEDIA_TYPES)
IMAGE_DETAILS = ("low", "high", "auto")
IMAGE_DETAILS_TEXT = '"low", "high" or "auto"'
CHAT_FIELDS = ("messages", "tools", "functions", "parallel_tool_calls")
DPO_FIELDS = ("input", "preferred_output", "non_preferred_output")
DPO_INPUT_FIELDS = ("messages", "tools", "functions", "parallel_tool_calls")

CHAT_EXAMPLE = '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}'
DPO_EXAMPLE = ('{"input": {"messages": [...]}, "preferred_output": [{"role": "assistant", ...}], '
               '"non_preferred_output": [{"role": "assistant", ...}]}')

# (turns, estimate, bound, reference-field signature or None)
Figures = tuple[int, int, int, "tuple[str, ...] | None"]


def json_length(value: object) -> int:
    """Characters of ``value`` as compact JSON (its repr for what JSON cannot hold)."""
    try:
        return len(orjson.dumps(value))
    except TypeError:
        return len(repr(value))


_ROLE_TURNS = {"system": 0, "user": 0, "assistant": 1}  # the roles of a plain example: trainable turns


def plain_chat(line: bytes | bytearray) -> tuple[int, int, int] | None:
    """(turns, estimate, bound) of one line if it is a plainly valid supervised example, else None."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return plain_figures(obj, len(line))


def plain_figures(obj: object, size: int) -> tuple[int, int, int] | None:
    """(turns, estimate, bound) of a parsed plainly valid supervised example, or None to run the
    full check.

    Plainly valid: the object is only "messages", a non-empty list; each message exactly a system,
    user or assistant role and a non-empty content string, plus a ``weight`` of 0 or 1 (an int) on
    assistant messages; at least one trainable turn. The scanner parses each line once with
    orjson (the fastest parser at hand); this check is a short loop over the messages.
    """
    if type(obj) is not dict or len(obj) != 1:
        return None
    messages = obj.get("messages")
    if type(messages) is not list or not messages:
        return None
    chars = 0
    turns = 0
    role_turns = _ROLE_TURNS
    # Subscripts rather than .get() and type checks: this loop runs for every message of the file.
    # Whatever a plain message is not raises here: KeyError for a missing field or a role outside
    # system/user/assistant (a number or null included), TypeError for a message that is not an
    # object or a role that cannot be a dict key (a list or an object); both mean "not plain".
    try:
        for message in messages:
            content = message["content"]
            if type(content) is not str or not content:
                return None
            trainable = role_turns[message["role"]]
            if len(message) != 2:
                if len(message) != 3 or not trainable:
                    return None
                weight = message["weight"]
                if type(weight) is not int or weight not in (0, 1):
                    return None
                trainable = weight
            turns += trainable
            chars += len(content)
    except (KeyError, TypeError):
        return None
    if not turns:
        return None
    overhead = MESSAGE_TOKENS * len(messages) + REPLY_TOKENS
    return turns, chars // 4 + overhead, size + overhead


class _Walk:
    """What the full check of one example gathers while it walks the messages."""

    __slots__ = (
        "call_ids",
        "chars",
        "errors",
        "image_tokens",
        "line",
        "messages",
        "out",
        "path",
        "turns",
        "url_chars",
    )

    def __init__(self, path: str, line: int, out: list[Diagnostic]) -> None:
        self.path = path
        self.line = line
        self.out = out
        self.chars = 0
        self.messages = 0
        self.image_tokens = 0
        self.url_chars = 0
        self.turns = 0
        self.call_ids: set[str] = set()
        self.errors = 0

    def report(self, code: str, field: str | None = None, **values: Any) -> None:
        if RULES[code].severity == "error":
            self.errors += 1
        add = getattr(self.out, "add", None)  # a Findings builds only the diagnostics it lists
        if add is not None:
            add(code, self.path, self.line, field=field, **values)
        else:
            self.out.append(diagnose(code, self.path, self.line, field=field, **values))

    def figures(self, size: int, signature: tuple[str, ...] | None) -> Figures:
        overhead = MESSAGE_TOKENS * self.messages + REPLY_TOKENS
        estimate = self.chars // 4 + overhead + self.image_tokens
        bound = size - self.url_chars + overhead + self.image_tokens
        return self.turns, estimate, bound, signature


def check_example(method: str, obj: dict[str, Any], size: int, path: str, line: int,
                  out: list[Diagnostic]) -> tuple[Figures, int]:
    """Report every problem of one example into ``out``; return (figures, number of errors)."""
    walk = _Walk(path, line, out)
    signature: tuple[str, ...] | None = None
    if method == "supervised":
        _check_chat(obj, walk)
    elif method == "dpo":
        _check_dpo(obj, walk)
    else:
        signature = _check_reinforcement(obj, walk)
    return walk.figures(size, signature), walk.errors


# --- per method ------------------------------------------------------------------------------


def _check_chat(obj: dict[str, Any], walk: _Walk) -> None:
    for key in obj:
        if key not in CHAT_FIELDS:
            walk.report("TK-D050", key, method="supervised", known=", ".join(CHAT_FIELDS))
    _check_tools(obj, "", walk)
    if "messages" not in obj:
        walk.report("TK-D020", "messages", example=CHAT_EXAMPLE)
        return
    if _check_messages(obj["messages"], "messages", walk) and not walk.turns:
        walk.report("TK-D037")


def _check_reinforcement(obj: dict[str, Any], walk: _Walk) -> tuple[str, ...]:
    _check_tools(obj, "", walk)
    signature = tuple(sorted(key for key in obj if key not in CHAT_FIELDS))
    if not signature:
        walk.report("TK-D071", known=", ".join(CHAT_FIELDS))
    if "messages" not in obj:
        walk.report("TK-D020", "messages", example='{"messages": [...], "reference_answer": "..."}')
    else:
        messages = obj["messages"]
        if _check_messages(messages, "messages", walk):
            last = messages[-1]
            role = last.get("role") if isinstance(last, dict) else None
            if role != "user":
                walk.report("TK-D070", f"messages[{len(messages) - 1}]", role=_role_name(role))
    walk.turns = 0  # the model writes the answer: nothing in the example is trained on directly
    return signature


def _check_dpo(obj: dict[str, Any], walk: _Walk) -> None:
    for key in obj:
        if key not in DPO_FIELDS:
            walk.report("TK-D050", key, method="DPO", known=", ".join(DPO_FIELDS))
    inputs = obj.get("input")
    if "input" not in obj:
        walk.report("TK-D060", "input", example=DPO_EXAMPLE)
    elif type(inputs) is not dict:
        walk.report("TK-D061", "input", value=show(inputs), example=DPO_EXAMPLE)
    else:
        for key in inputs:
            if key not in DPO_INPUT_FIELDS:
                walk.report("TK-D050", f"input.{key}", method="DPO input", known=", ".join(DPO_INPUT_FIELDS))
        _check_tools(inputs, "input.", walk)
        if "messages" not in inputs:
            walk.report("TK-D060", "input.messages", example=DPO_EXAMPLE)
        else:
            messages = inputs["messages"]
            if _check_messages(messages, "input.messages", walk):
                last = messages[-1]
                role = last.get("role") if isinstance(last, dict) else None
                if role != "user":
                    walk.report("TK-D062", "input.messages", role=_role_name(role))
    walk.turns = 0  # outputs decide what is trained on, not the input's assistant messages
    outputs = []
    for name in ("preferred_output", "non_preferred_output"):
        if name not in obj:
            walk.report("TK-D060", name, example=DPO_EXAMPLE)
            continue
        value = obj[name]
        if type(value) is not list or len(value) != 1:
            walk.report("TK-D063", name, value=show(value))
            continue
        message = value[0]
        if type(message) is dict and message.get("role") in ("system", "user", "tool"):
            walk.report("TK-D064", f"{name}[0].role", value=show(message.get("role")))
            continue
        before = walk.turns
        _check_message(message, f"{name}[0]", walk)
        outputs.append(message)
        if name == "non_preferred_output":
            walk.turns = before
    if len(outputs) == 2 and outputs[0] == outputs[1]:
        walk.report("TK-D065")


# --- messages --------------------------------------------------------------------------------


def _role_name(role: object) -> str:
    return role if isinstance(role, str) and role in ROLES else "role-less" if role is None else show(role)


def _check_messages(messages: object, field: str, walk: _Walk) -> bool:
    """Check a message list; False when it is not a list worth looking into."""
    if type(messages) is not list or not messages:
        walk.report("TK-D021", field, value=show(messages))
        return False
    for index, message in enumerate(messages):
        _check_message(message, f"{field}[{index}]", walk)
    return True


def _check_message(message: object, field: str, walk: _Walk) -> None:
    if type(message) is not dict:
        walk.report("TK-D022", field, value=show(message))
        return
    walk.messages += 1
    role = message.get("role")
    if "role" not in message:
        walk.report("TK-D023", f"{field}.role", roles=ROLES_TEXT)
    elif type(role) is not str or role not in ROLES:
        walk.report("TK-D024", f"{field}.role", roles=ROLES_TEXT, value=show(role))
    role_text = role if isinstance(role, str) else "role-less"
    for key in message:
        if key not in MESSAGE_FIELDS:
            walk.report("TK-D038", f"{field}.{key}", known=MESSAGE_FIELDS_TEXT)

    name = message.get("name")
    if name is not None:
        if type(name) is not str:
            walk.report("TK-D041", f"{field}.name", value=show(name),
                        hint='"name" names the speaker, e.g. "clippy"')
        else:
            walk.chars += len(name)

    trainable = False
    if "weight" in message:
        weight = message["weight"]
        if role != "assistant":
            walk.report("TK-D035", f"{field}.weight", role=role_text)
        elif type(weight) is not int or weight not in (0, 1):
            walk.report("TK-D036", f"{field}.weight", value=show(weight))
            trainable = True  # reported already; do not also claim there is nothing to train on
        else:
            trainable = weight == 1
    else:
        trainable = role == "assistant"

    calls = False
    if "tool_calls" in message:
        if role != "assistant":
            walk.report("TK-D042", f"{field}.tool_calls", role=role_text)
        calls = _check_tool_calls(message["tool_calls"], f"{field}.tool_calls", walk)
    if "function_call" in message:
        if role != "assistant":
            walk.report("TK-D042", f"{field}.function_call", role=role_text)
        calls = _check_function(message["function_call"], f"{field}.function_call", walk) or calls

    if role == "tool":
        if "tool_call_id" not in message:
            walk.report("TK-D046", f"{field}.tool_call_id")
        else:
            call_id = message["tool_call_id"]
            if type(call_id) is not str:
                walk.report("TK-D041", f"{field}.tool_call_id", value=show(call_id),
                            hint="use the id of the assistant tool call this message answers")
            elif call_id not in walk.call_ids:
                walk.report("TK-D047", f"{field}.tool_call_id", value=show(call_id))

    _check_content(message, field, role, role_text, calls, trainable, walk)
    if trainable:
        walk.turns += 1


def _check_content(message: dict[str, Any], field: str, role: object, role_text: str, calls: bool,
                   trainable: bool, walk: _Walk) -> None:
    content = message.get("content")
    if content is None:
        if not (role == "assistant" and calls):
            walk.report("TK-D025", f"{field}.content")
        return
    if type(content) is str:
        walk.chars += len(content)
        empty = not content
    elif type(content) is list:
        for index, part in enumerate(content):
            _check_part(part, f"{field}.content[{index}]", role, role_text, walk)
        empty = not content
    else:
        walk.report("TK-D026", f"{field}.content", value=show(content))
        return
    if empty and not calls:
        if role == "assistant" and trainable:
            walk.report("TK-D039", f"{field}.content")
        else:
            walk.report("TK-D040", f"{field}.content")


def _check_part(part: object, field: str, role: object, role_text: str, walk: _Walk) -> None:
    if type(part) is not dict:
        walk.report("TK-D027", field, value=show(part))
        return
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if type(text) is not str:
            walk.report("TK-D029", f"{field}.text", value=show(text))
        else:
            walk.chars += len(text)
    elif kind == "image_url":
        if role != "user":
            walk.report("TK-D034", field, role=role_text)
        image = part.get("image_url")
        low = type(image) is dict and image.get("detail") == "low"
        walk.image_tokens += IMAGE_TOKENS_LOW if low else IMAGE_TOKENS
        _check_image(image, f"{field}.image_url", walk)
    else:
        walk.report("TK-D028", f"{field}.type", types=PART_TYPES, value=show(kind))


def _check_image(image: object, field: str, walk: _Walk) -> None:
    if type(image) is not dict or type(image.get("url")) is not str:
        walk.report("TK-D030", field, value=show(image))
        return
    url: str = image["url"]
    walk.url_chars += len(url)
    detail = image.get("detail")
    if "detail" in image and (type(detail) is not str or detail not in IMAGE_DETAILS):
        walk.report("TK-D033", f"{field}.detail", details=IMAGE_DETAILS_TEXT, value=show(detail))
    if url.startswith("data:"):
        media_type = url[5:].split(";", 1)[0].split(",", 1)[0].strip().lower()
        if media_type not in IMAGE_MEDIA_TYPES:
            walk.report("TK-D032", f"{field}.url", value=show(media_type or "(none)"),
                        types=IMAGE_MEDIA_TYPES_TEXT)
    elif not url.startswith(("https://", "http://")):
        walk.report("TK-D031", f"{field}.url", value=show(url))


def _check_tool_calls(calls: object, field: str, walk: _Walk) -> bool:
    if type(calls) is not list or not calls:
        walk.report("TK-D043", field, value=show(calls))
        return False
    for index, call in enumerate(calls):
        where = f"{field}[{index}]"
        if type(call) is not dict:
            walk.report("TK-D044", where, value=show(call))
            continue
        call_id = call.get("id")
        if type(call_id) is not str:
            walk.report("TK-D041", f"{where}.id", value=show(call_id),
                        hint='give every call an id, e.g. "call_1", for its tool message to answer')
        else:
            walk.call_ids.add(call_id)
        if call.get("type") != "function":
            walk.report("TK-D045", f"{where}.type", value=show(call.get("type")))
        _check_function(call.get("function"), f"{where}.function", walk)
    return True


def _check_function(function: object, field: str, walk: _Walk) -> bool:
    if type(function) is not dict:
        walk.report("TK-D044", field, value=show(function))
        return False
    name = function.get("name")
    if type(name) is not str:
        walk.report("TK-D041", f"{field}.name", value=show(name), hint="name the function to call")
    else:
        walk.chars += len(name)
    arguments = function.get("arguments")
    if type(arguments) is not str:
        walk.report("TK-D041", f"{field}.arguments", value=show(arguments),
                    hint='arguments are JSON encoded as a string, e.g. "{\\"city\\": \\"Paris\\"}"')
    else:
        walk.chars += len(arguments)
    return True


def _check_function_definition(function: object, where: str, walk: _Walk) -> None:
    """One function definition (of ``tools[i].function`` or the legacy ``functions[i]``)."""
    if type(function) is not dict:
        walk.report("TK-D044", where, value=show(function))
    elif type(function.get("name")) is not str:
        walk.report("TK-D041", f"{where}.name", value=show(function.get("name")),
                    hint="name the function the model may call")


def _check_tools(obj: dict[str, Any], prefix: str, walk: _Walk) -> None:
    if "tools" in obj:
        tools = obj["tools"]
        if type(tools) is not list:
            walk.report("TK-D048", f"{prefix}tools", value=show(tools))
        else:
            for index, tool in enumerate(tools):
                where = f"{prefix}tools[{index}]"
                if type(tool) is not dict:
                    walk.report("TK-D044", where, value=show(tool))
                    continue
                if tool.get("type") != "function":
                    walk.report("TK-D045", f"{where}.type", value=show(tool.get("type")))
                _check_function_definition(tool.get("function"), f"{where}.function", walk)
            walk.chars += json_length(tools)
    if "functions" in obj:
        functions = obj["functions"]
        if type(functions) is not list:
            walk.report("TK-D048", f"{prefix}functions", value=show(functions))
        else:
            for index, function in enumerate(functions):
                _check_function_definition(function, f"{prefix}functions[{index}]", walk)
            walk.chars += json_length(functions)
    if "parallel_tool_calls" in obj and type(obj["parallel_tool_calls"]) is not bool:
        walk.report("TK-D049", f"{prefix}parallel_tool_calls", value=show(obj["parallel_tool_calls"]))
