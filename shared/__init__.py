"""Code shared by the Cloud Functions (functions/) and the render job (render_job/).

Imports neither of them. Pure modules: spec, states, errors. I/O lives in db, repository,
adapters/ and is wired in exactly one place: bootstrap.
"""
