"""The web UI: `orch ui` serves pages and a JSON API over the store the CLI uses.

`orchestrator.ui.app.create_app(store, artifacts, home=..., token=...)` builds the
FastAPI app; `serve_ui(...)` runs it. Modules: `web` (shared state, rendering, input
patterns), `auth` (token and sign-in), `queries` (the UI's store reads), `graphs` (DAG
shapes), `previews` (artifact previews), `forms` and `launch` (starting runs),
`present` (wording), and one `views_*` module per area. Templates and vendored static
files (htmx, Cytoscape.js + dagre, Chart.js) ship inside the package; see
`static/VENDORED.md`.
"""
