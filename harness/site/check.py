"""``check_site``: a built site's links and assets, checked without a browser (pure Python, html.parser).

Every ``href``/``src`` of every page and every ``url()`` of every stylesheet must name a file inside the site
folder; no URL may leave it (``http:``, ``https:``, ``//host``, any other scheme: the site must work offline); every
``<img>`` needs non-empty alt text; every page a ``<meta name="viewport">`` and a non-empty ``<title>``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import UsageError

#: attributes holding URLs
URL_ATTRIBUTES = ("href", "src", "srcset", "poster", "data", "action", "formaction")
CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)|@import\s+(['"])(.*?)\3""", re.IGNORECASE)


class _Page(HTMLParser):
    """What one page references and declares."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str]] = []  # (tag.attribute, url)
        self.images_without_alt = 0
        self.viewport = False
        self.title = ""
        self._in_title = False
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        for name in URL_ATTRIBUTES:
            if name in values:
                urls = [part.strip().split()[0] for part in values[name].split(",") if part.strip()] \
                    if name == "srcset" else [values[name]]
                self.urls += [(f"{tag}.{name}", url) for url in urls]
        if tag == "img" and not values.get("alt", "").strip():
            self.images_without_alt += 1
        if tag == "meta" and values.get("name", "").lower() == "viewport" and values.get("content", "").strip():
            self.viewport = True
        if "style" in values:
            self.styles.append(values["style"])
        self._in_title = tag == "title"
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._in_style:
            self.styles.append(data)


def css_urls(text: str) -> list[str]:
    """Every ``url(...)`` and ``@import "..."`` of a stylesheet."""
    return [m.group(2) if m.group(2) is not None and m.group(0).lower().startswith("url") else m.group(4)
            for m in CSS_URL.finditer(text)]


def _url_problem(url: str, base: Path, root: Path) -> str | None:
    """Why ``url`` (found in a file of folder ``base``) does not name a file inside ``root``; None when it does."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or url.startswith("//"):
        return f"external URL '{url}' (the site must work offline)"
    if not parts.path:  # "#anchor" on the same page
        return None
    target = (root / parts.path.lstrip("/") if parts.path.startswith("/") else base / unquote(parts.path))
    try:
        resolved = target.resolve()
    except OSError:
        return f"link '{url}' cannot be resolved"
    if not resolved.is_relative_to(root):
        return f"link '{url}' leaves the site folder"
    if not resolved.is_file():
        return f"link '{url}' names no file"
    return None


def check_site(folder: str | Path) -> list[str]:
    """Every problem of the site in ``folder``, one line each (``PAGE: problem``); [] when none."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"{root}: no such site folder", hint="build one: harness site build DB --out DIR")
    root = root.resolve()
    pages = sorted(root.rglob("*.html"))
    if not pages:
        return [f"{root}: no HTML page"]
    problems = []
    for path in pages:
        name = path.relative_to(root).as_posix()
        page = _Page()
        try:
            page.feed(path.read_text(encoding="utf-8"))
            page.close()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{name}: unreadable: {exc}")
            continue
        urls = page.urls + [("style", url) for text in page.styles for url in css_urls(text)]
        for where, url in urls:
            problem = _url_problem(url, path.parent, root)
            if problem:
                problems.append(f"{name}: {where}: {problem}")
        if page.images_without_alt:
            problems.append(f"{name}: {page.images_without_alt} <img> without alt text")
        if not page.viewport:
            problems.append(f'{name}: no <meta name="viewport">')
        if not page.title.strip():
            problems.append(f"{name}: no <title>")
    for path in sorted(root.rglob("*.css")):
        name = path.relative_to(root).as_posix()
        for url in css_urls(path.read_text(encoding="utf-8", errors="replace")):
            problem = _url_problem(url, path.parent, root)
            if problem:
                problems.append(f"{name}: url(): {problem}")
    return problems
