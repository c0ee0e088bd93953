"""The OpenAPI document (3.1) of the daemon's HTTP API, built from the routes themselves.

`describe` holds the `@doc(...)` decorator each handler wears (summary, query parameters, body,
responses), `schemas` the pydantic models of what the API answers, and `document` builds the
document from the app's routes: a route without a description is an error, so the document
cannot leave one out. Served at `GET /api/openapi.json` (no token needed).
"""
