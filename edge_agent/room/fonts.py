"""A font that can draw the labels' Chinese (学校、班级), found among Debian's CJK fonts."""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Sequence

import pygame
import pygame.freetype

log = logging.getLogger(__name__)

# Debian packages: fonts-wqy-microhei (small, installed by scripts/bootstrap),
# fonts-wqy-zenhei, fonts-noto-cjk, fonts-droid-fallback.
CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
NO_CJK_FONT = (
    "no CJK font found (looked for {paths}); the screens' Chinese labels show as boxes. "
    "Install one: apt-get install fonts-wqy-microhei"
)


def find_cjk_font(candidates: Sequence[str] = CJK_FONTS) -> str | None:
    """The first CJK-capable font file present on this machine, or None."""
    for path in candidates:
        if pathlib.Path(path).is_file():
            return path
    return None


class Labels:
    """Renders label text to surfaces with one font; call only from the render thread."""

    def __init__(self, candidates: Sequence[str] = CJK_FONTS) -> None:
        self.candidates = tuple(candidates)
        self.warning: str | None = None
        self._font: pygame.freetype.Font | None = None

    def open(self) -> None:
        """Load the font (after ``pygame.freetype.init``); falls back with a warning."""
        pygame.freetype.init()
        path = find_cjk_font(self.candidates)
        if path is None:
            self.warning = NO_CJK_FONT.format(paths=", ".join(self.candidates))
            log.warning("%s", self.warning)
        self._font = pygame.freetype.Font(path, 24)

    def render(
        self, text: str, size: int, colour: tuple[int, int, int], max_width: int = 0
    ) -> pygame.Surface:
        """The text drawn at ``size`` px, shrunk to fit ``max_width`` (0: any width)."""
        if self._font is None:
            raise RuntimeError("Labels.render called before Labels.open")
        surface, _ = self._font.render(text, colour, size=size)
        if max_width and surface.get_width() > max_width and size > 8:
            smaller = max(8, size * max_width // surface.get_width())
            surface, _ = self._font.render(text, colour, size=smaller)
        return surface
