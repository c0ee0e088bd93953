"""Pre-boot step 1: fetch a server's current definition, from the Panel or the local config.

With a Panel (`remote`), this is Wings' `GET {remote}/api/remote/servers/{uuid}` with
`Authorization: Bearer <token_id>.<token>`. Without one, the config file's `servers:` entry is
read again (so an operator's edit takes effect at the next start); a server added through the API
keeps its recorded definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from wingman.engine.config import read_document
from wingman.engine.remote.client import PanelClient, PanelError
from wingman.engine.remote.documents import with_runtime


class SyncFailed(Exception):
    pass


class DefinitionSource:
    def __init__(
        self,
        remote: str | None,
        token_id: str | None,
        token: str,
        config_file: Path | None,
        timeout: float = 15.0,
        remote_runtime: str = "docker",
    ):
        self.remote = remote.rstrip("/") if remote else None
        self.remote_runtime = remote_runtime  # of a Panel's server whose definition names none
        self.token_id = token_id
        self.token = token
        self.config_file = config_file
        self.timeout = timeout

    async def fetch(self, uuid: str) -> dict[str, Any] | None:
        """The definition to boot with, or None to keep the recorded one."""
        if self.remote:
            return await self._from_panel(uuid)
        return self._from_config_file(uuid)

    async def _from_panel(self, uuid: str) -> dict[str, Any]:
        assert self.remote is not None
        client = PanelClient(self.remote, self.token_id, self.token, timeout=self.timeout)
        try:
            doc = await client.get_json(f"/api/remote/servers/{uuid}")
        except PanelError as exc:
            raise SyncFailed(str(exc)) from None
        finally:
            await client.aclose()
        if not isinstance(doc, dict) or "settings" not in doc:
            raise SyncFailed("the Panel's answer has no `settings`")
        return with_runtime(
            {"settings": doc["settings"], "process_configuration": doc.get("process_configuration") or {}},
            self.remote_runtime,
        )

    def _from_config_file(self, uuid: str) -> dict[str, Any] | None:
        if not self.config_file or not self.config_file.exists():
            return None
        try:
            raw = read_document(self.config_file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise SyncFailed(f"{self.config_file} is not valid YAML: {exc}") from None
        for doc in raw.get("servers") or []:
            if isinstance(doc, dict) and str((doc.get("settings") or {}).get("uuid")) == uuid:
                return doc
        return None
