"""The check after a build: no page or stylesheet of the site may load a resource from another host (the book must
work offline)."""
from __future__ import annotations

import html.parser
import re
from pathlib import Path


class _Resources(html.parser.HTMLParser):
    """URLs a page loads: scripts, stylesheets, images, media, frames (links to read elsewhere are fine)."""
    LOADS = {"script": ("src",), "img": ("src", "srcset"), "audio": ("src",), "video": ("src", "poster"),
             "source": ("src", "srcset"), "track": ("src",), "iframe": ("src",), "embed": ("src",),
             "object": ("data",), "input": ("src",)}
    LINK_RELS = {"stylesheet", "icon", "preload", "modulepreload", "prefetch", "manifest", "shortcut"}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        names = self.LOADS.get(tag, ())
        if tag == "link" and set((attrs.get("rel") or "").lower().split()) & self.LINK_RELS:
            names = ("href",)
        self.urls += [attrs[n] for n in names if attrs.get(n)]
        self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", attrs.get("style") or "")


def external_resources(site: Path) -> list[tuple[str, str]]:
    """(file, url) for every resource a page or stylesheet of the built site would fetch from another host."""
    found = []
    for page in sorted(site.rglob("*.html")):
        parser = _Resources()
        parser.feed(page.read_text(errors="replace"))
        found += [(str(page.relative_to(site)), u) for u in parser.urls if re.match(r"\s*(https?:)?//", u)]
    for css in sorted(site.rglob("*.css")):
        text = css.read_text(errors="replace")
        for url in re.findall(r"(?:url\(\s*['\"]?|@import\s+['\"])((?:https?:)?//[^'\")\s]+)", text):
            found.append((str(css.relative_to(site)), url))
    return found
