"""`trainyard`, the command line for a Trainyard portal.

It talks to the portal only over HTTP and WebSockets, like any script: it imports neither
`portal` nor Django (an import-linter contract says so). The API calls it makes, and the
response fields it reads, are declared once in `trainyard_cli.api.ENDPOINTS`; a test checks
them against the portal's OpenAPI schema, so the two cannot drift.
"""
