"""Static assets of the web pages, served from memory with content-hash versions, and the
pages' templates that link them (web).

Every file under `web/static/` is read once at startup. Pages link each file as
`/static/PATH?v=HASH`; a request carrying the current hash is cached for a year
(`immutable`), anything else must revalidate (ETag), so a deploy never serves a stale
script with a new page.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATES_DIR = Path(__file__).parent / "templates"
HLS_JS = "vendor/hls.min.js"
VERSIONED_CACHE = "public, max-age=31536000, immutable"
UNVERSIONED_CACHE = "public, no-cache"
MAX_ASSET_BYTES = 8 * 1024 * 1024

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
}


@dataclass(frozen=True, slots=True)
class Asset:
    path: str
    body: bytes
    content_type: str
    version: str

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class AssetCatalog:
    """The static files, their versions, and the HTTP endpoint that serves them."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self._assets: dict[str, Asset] = {}
        if directory.is_dir():
            for file in sorted(directory.rglob("*")):
                if not file.is_file() or file.stat().st_size > MAX_ASSET_BYTES:
                    continue
                relative = file.relative_to(directory).as_posix()
                body = file.read_bytes()
                content_type = _TYPES.get(file.suffix) or (
                    mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                )
                version = hashlib.sha256(body).hexdigest()[:12]
                self._assets[relative] = Asset(relative, body, content_type, version)
        if HLS_JS not in self._assets:
            log.warning("web assets: %s is missing; run `make web` (scripts/build-web.sh)",
                        HLS_JS)

    def __contains__(self, path: str) -> bool:
        return path in self._assets

    def url(self, path: str) -> str:
        """The versioned URL of an asset (unversioned when the file is missing)."""
        asset = self._assets.get(path)
        return f"/static/{path}?v={asset.version}" if asset else f"/static/{path}"

    def import_map(self) -> dict[str, dict[str, str]]:
        """Maps each module's plain URL to its versioned one, so module imports are cached too."""
        return {"imports": {f"/static/{a.path}": self.url(a.path)
                            for a in self._assets.values() if a.path.endswith(".js")
                            and not a.path.startswith("vendor/")}}

    async def endpoint(self, request: Request) -> Response:
        asset = self._assets.get(request.path_params["path"])
        if asset is None:
            return Response("not found\n", 404, media_type="text/plain",
                            headers={"Cache-Control": "public, max-age=10"})
        versioned = request.query_params.get("v") == asset.version
        headers = {
            "Cache-Control": VERSIONED_CACHE if versioned else UNVERSIONED_CACHE,
            "ETag": asset.etag,
            "X-Content-Type-Options": "nosniff",
            # Embeds on other sites load these files too.
            "Access-Control-Allow-Origin": "*",
        }
        if asset.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        body = b"" if request.method == "HEAD" else asset.body
        response = Response(body, media_type=asset.content_type, headers=headers)
        if request.method == "HEAD":
            response.headers["Content-Length"] = str(len(asset.body))
        return response


def page_templates(assets: AssetCatalog) -> Environment:
    """The pages' Jinja templates, autoescaped, with `asset(path)` (a versioned URL),
    `import_map` and `has_hls_js` from `assets`."""
    templates = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    templates.globals["asset"] = assets.url
    templates.globals["import_map"] = assets.import_map
    templates.globals["has_hls_js"] = HLS_JS in assets
    return templates
