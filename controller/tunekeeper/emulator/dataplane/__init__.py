"""The Azure OpenAI data plane of the emulator (everything under ``/openai``).

``add_dataplane_routes(app)`` registers files.py, jobs.py, model_list.py and chat.py; app.py's
middleware has already checked the api key and the api-version by the time a handler runs.
training.py holds the pure training simulation; protocol.py the shared request conventions.
"""

from __future__ import annotations

from aiohttp import web


def add_dataplane_routes(app: web.Application) -> None:
    from tunekeeper.emulator.dataplane import chat, files, jobs, model_list

    files.add_routes(app)
    jobs.add_routes(app)
    model_list.add_routes(app)
    chat.add_routes(app)
