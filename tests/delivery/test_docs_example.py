"""The Python example of docs/signed-playback.md mints a token golive accepts, as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.delivery.signing import KeyRing

from golive.delivery import Grant, PlaybackAccess, Viewer

DOC = Path(__file__).resolve().parents[2] / "docs" / "signed-playback.md"


async def test_the_documented_python_example_works(tmp_path: Path) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(block.strip().splitlines()) <= 12
    ring = KeyRing()
    private = ring.add_key("key_doc", "RS256")
    ring.add_playback("pbdoc", signed=True)
    (tmp_path / "signing-key.pem").write_text(private)
    code = (block.replace('"signing-key.pem"', repr(str(tmp_path / "signing-key.pem")))
            .replace("PLAYBACK_ID", "pbdoc").replace("KEY_ID", "key_doc"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(DOC), "exec"), {})
    url = urlsplit(printed.getvalue().strip())
    (token,) = parse_qs(url.query)["token"]
    assert url.path == "/watch/pbdoc"
    grant = await PlaybackAccess(ring).check("pbdoc", token, audience="v",
                                             viewer=Viewer("page", "127.0.0.1"))
    assert isinstance(grant, Grant)
