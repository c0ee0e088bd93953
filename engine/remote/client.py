"""The Panel's remote API, as Wings calls it (`remote/http.go` in pterodactyl/wings): every request
carries `Authorization: Bearer <token_id>.<token>` and Pterodactyl's `Accept` type, and every
failure is a `PanelError` that names the URL, the status and the Panel's own `errors[].detail`."""

from __future__ import annotations

from typing import Any

import httpx

ACCEPT = "application/vnd.pterodactyl.v1+json"
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # a Panel's page of 50 servers is ~100 KB; anything near this is wrong


class PanelError(Exception):
    """The Panel could not be reached, or answered something other than what was asked for."""

    def __init__(self, url: str, reason: str, status: int | None = None):
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.status = status
        self.reason = reason

    @property
    def unreachable(self) -> bool:
        """No answer at all (connection refused, a timeout), as opposed to an answer refused."""
        return self.status is None


class PanelClient:
    def __init__(
        self,
        remote: str,
        token_id: str | None,
        token: str,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.remote = remote.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.remote,
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {token_id}.{token}", "Accept": ACCEPT, "User-Agent": "wingman"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self._call("GET", path, params=params)

    async def post_json(self, path: str, body: Any) -> Any:
        """POST `body`; the answer's JSON, or None for an empty answer (204)."""
        return await self._call("POST", path, json=body)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.remote}{path}"
        try:
            resp = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise PanelError(url, f"could not reach the Panel: {exc or type(exc).__name__}") from None
        if resp.status_code >= 300:
            raise PanelError(url, f"the Panel answered {resp.status_code}: {panel_error(resp)}", resp.status_code)
        if not resp.content:
            return None
        if len(resp.content) > MAX_ANSWER_BYTES:
            raise PanelError(url, f"the Panel's answer is {len(resp.content)} bytes long", resp.status_code)
        try:
            return resp.json()
        except ValueError:
            raise PanelError(url, "the Panel's answer is not JSON", resp.status_code) from None


def panel_error(resp: httpx.Response) -> str:
    """The Panel's own words for a refusal: its `errors[].detail`, else the start of the body."""
    try:
        body = resp.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        details = [str(e.get("detail", "")) for e in errors or [] if isinstance(e, dict)]
        return "; ".join(d for d in details if d) or resp.text[:200]
    except ValueError:
        return resp.text[:200]
