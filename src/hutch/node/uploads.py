"""The ``COPY`` files of a build a node runs, which the API replica that took them keeps in the catalog
(:mod:`hutch.api.services.shared_uploads`): copied into the node's own store before the build starts,
digested again on the way (the layer cache is keyed on the node's digest, never a client's word)."""

from __future__ import annotations

from ..catalog import Catalog
from ..catalog.repos import template_uploads
from ..errors import InvalidRequest
from ..templates.builder import Plan
from ..templates.uploads import UploadStore


async def fetch(catalog: Catalog, uploads: UploadStore, plan: Plan) -> None:
    """Put each ``COPY`` step's archive of ``plan`` into ``uploads``, where it is not already."""
    for step in plan.steps:
        if step.type != "COPY" or not step.files_hash or uploads.has(plan.template_id, step.files_hash):
            continue
        async with catalog.transaction() as session:
            stored = await template_uploads.get(session, plan.template_id, step.files_hash)
            if stored is None:
                raise InvalidRequest(f"step {step.index}: the files of {step.args[0]!r} were not uploaded")
            chunks = template_uploads.read(session, plan.template_id, step.files_hash)
            await uploads.receive(plan.template_id, step.files_hash, chunks)
