"""The salon's web admin (`/admin/`): server-rendered German pages over the same use cases the phone
uses. Jinja2 templates and plain HTML forms (no JavaScript framework: every page works on a tablet's
browser, and every action is a POST with a CSRF token), sessions stored server-side.
"""
