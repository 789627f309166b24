"""``superres serve``: a local web page and HTTP API over the same engine as the CLI.

    app.py     the ASGI application (Starlette): routes, the page, the API
    guards.py  what a server left running on a desktop needs: Host and Origin checks, token, upload limit
    jobs.py    the queue: jobs run by a pool of worker threads, results in a private folder that expires
    catalog.py which models a client may pick, and the cache that loads each one once
    static/    the page: index.html, app.js, style.css (no build step, nothing from a CDN)

Nothing here is imported by the engine; torch is imported when the first job runs, so the server
starts in about a second.
"""
