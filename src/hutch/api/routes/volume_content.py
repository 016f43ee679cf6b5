"""``/volumecontent/{id}/…``: a volume's files, authenticated with the volume's token
(``Authorization: Bearer``), not an API key. Files stream both ways: a download as the node reads it, an
upload into the node as it arrives."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from ..deps import VolumeServiceDep
from ..schemas.volumes import MAX_ID, PathChange, VolumeEntryStat
from ..services.volumes import MAX_DEPTH, MAX_PATH

router = APIRouter(tags=["volume content"])


async def _token(
    volume_id: str, service: VolumeServiceDep, authorization: Annotated[str | None, Header()] = None
) -> str:
    """The request's volume token, checked before anything else of the request is (401 otherwise)."""
    scheme, _, token = (authorization or "").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" else None
    service.check_token(volume_id=volume_id, token=bearer)
    return bearer or ""


Token = Annotated[str, Depends(_token)]
PathQuery = Annotated[str, Query(min_length=1, max_length=MAX_PATH)]
Id = Annotated[int | None, Query(ge=0, le=MAX_ID)]
Mode = Annotated[int | None, Query(ge=0, le=0o7777)]


@router.get("/volumecontent/{volume_id}/path")
async def stat_path(
    volume_id: str, path: PathQuery, token: Token, service: VolumeServiceDep
) -> VolumeEntryStat:
    return VolumeEntryStat.of(await service.stat(volume_id=volume_id, token=token, path=path))


@router.patch("/volumecontent/{volume_id}/path")
async def change_path(
    volume_id: str, path: PathQuery, body: PathChange, token: Token, service: VolumeServiceDep
) -> VolumeEntryStat:
    entry = await service.change(
        volume_id=volume_id, token=token, path=path, uid=body.uid, gid=body.gid, mode=body.mode
    )
    return VolumeEntryStat.of(entry)


@router.delete("/volumecontent/{volume_id}/path", status_code=204, response_class=Response)
async def remove_path(volume_id: str, path: PathQuery, token: Token, service: VolumeServiceDep) -> Response:
    await service.remove(volume_id=volume_id, token=token, path=path)
    return Response(status_code=204)


@router.get("/volumecontent/{volume_id}/dir")
async def list_dir(
    volume_id: str,
    path: PathQuery,
    token: Token,
    service: VolumeServiceDep,
    depth: Annotated[int, Query(ge=1, le=MAX_DEPTH)] = 1,
) -> list[VolumeEntryStat]:
    entries = await service.list_dir(volume_id=volume_id, token=token, path=path, depth=depth)
    return [VolumeEntryStat.of(entry) for entry in entries]


@router.post("/volumecontent/{volume_id}/dir", status_code=201)
async def make_dir(
    volume_id: str,
    path: PathQuery,
    token: Token,
    service: VolumeServiceDep,
    uid: Id = None,
    gid: Id = None,
    mode: Mode = None,
    force: bool = False,
) -> VolumeEntryStat:
    entry = await service.make_dir(
        volume_id=volume_id, token=token, path=path, uid=uid, gid=gid, mode=mode, force=force
    )
    return VolumeEntryStat.of(entry)


@router.get("/volumecontent/{volume_id}/file", response_class=StreamingResponse)
async def read_file(
    volume_id: str, path: PathQuery, token: Token, service: VolumeServiceDep
) -> StreamingResponse:
    chunks = await service.read(volume_id=volume_id, token=token, path=path)
    return StreamingResponse(chunks, media_type="application/octet-stream")


@router.put("/volumecontent/{volume_id}/file", status_code=201)
async def write_file(
    request: Request,
    volume_id: str,
    path: PathQuery,
    token: Token,
    service: VolumeServiceDep,
    uid: Id = None,
    gid: Id = None,
    mode: Mode = None,
    force: bool = False,
) -> VolumeEntryStat:
    entry = await service.write(
        volume_id=volume_id,
        token=token,
        path=path,
        chunks=request.stream(),
        uid=uid,
        gid=gid,
        mode=mode,
        force=force,
    )
    return VolumeEntryStat.of(entry)
