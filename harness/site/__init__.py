"""The contest's static site: ``harness site build`` (:func:`build_site`) and ``harness site check``
(:func:`check_site`). Plain HTML, one stylesheet, a little JavaScript for sorting tables, SVG charts; works
offline from ``file://`` (docs/site.md)."""

from .build import SiteSummary, build_site
from .check import check_site

__all__ = ["SiteSummary", "build_site", "check_site"]
