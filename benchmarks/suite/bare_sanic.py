"""The HTTP baseline: a bare Sanic app answering a JSON POST, run the way wingman runs (one
process, uvloop, no access log), so that wrk measures what Sanic itself allows on this machine.

    python -m benchmarks.suite.bare_sanic PORT
"""

from __future__ import annotations

import sys

from sanic import Request, Sanic
from sanic.response import json

app = Sanic("bare")
app.config.ACCESS_LOG = False


@app.post("/api/servers/<uuid:str>/power")
async def power(request: Request, uuid: str):
    body = request.json
    return json({"server": uuid, "action": body["action"], "status": "queued"}, status=202)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), single_process=True, access_log=False, motd=False)
