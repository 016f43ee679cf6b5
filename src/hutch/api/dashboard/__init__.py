"""The web dashboard, served by the API under ``/dashboard``: a page of plain ES modules (Preact with htm,
xterm.js, uPlot; copies in ``static/vendor``, no build step) that logs in with an API key and then calls
the API's own routes with its session, and each sandbox's envd through the edge."""
