"""The Azure OpenAI data plane of the emulator (everything under ``/openai``).

``add_dataplane_routes(app)`` registers files.py, uploads.py, jobs.py, model_list.py and chat.py; app.py's
middleware has already checked the api key and the api-version by the time a handler runs.
Every route exists at ``/openai/...`` (the default account) and ``/accounts/{account}/openai/...``
(any other account of the server); ``protocol.context(request)`` picks the account.
training.py holds the pure training simulation; protocol.py the shared request conventions.
"""

from __future__ import annotations

from aiohttp import web


def add_dataplane_routes(app: web.Application) -> None:
    from tunekeeper.emulator.dataplane import chat, files, jobs, model_list, uploads
    from tunekeeper.emulator.dataplane.protocol import Routes

    routes = Routes(app)
    files.add_routes(routes)
    uploads.add_routes(routes)
    jobs.add_routes(routes)
    model_list.add_routes(routes)
    chat.add_routes(routes)
