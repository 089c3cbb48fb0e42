"""The screen model of a terminal (pyte) with a bounded scrollback, and the restore: what an
xterm must be written to show the same screen, its scrollback above it, and the cursor."""

from __future__ import annotations

from collections import deque
from typing import Any

import pyte
from pyte.graphics import BG_ANSI, BG_AIXTERM, FG_ANSI, FG_AIXTERM

_FG = {name: code for code, name in {**FG_ANSI, **FG_AIXTERM}.items()}
_BG = {name: code for code, name in {**BG_ANSI, **BG_AIXTERM}.items()}
_FLAGS = (("bold", 1), ("italics", 3), ("underscore", 4), ("blink", 5), ("reverse", 7), ("strikethrough", 9))
_DEFAULT: tuple[Any, ...] = ("default", "default", False, False, False, False, False, False)


def _style(char: Any) -> tuple[Any, ...]:
    return (char.fg, char.bg, char.bold, char.italics, char.underscore, char.blink, char.reverse,
            char.strikethrough)


def _sgr(style: tuple[Any, ...]) -> str:
    """The SGR sequence that sets ``style`` from the default."""
    codes = ["0"]
    fg, bg = style[0], style[1]
    for (_, code), on in zip(_FLAGS, style[2:]):
        if on:
            codes.append(str(code))
    for color, names, truecolor in ((fg, _FG, "38"), (bg, _BG, "48")):
        if color == "default":
            continue
        if color in names:
            codes.append(str(names[color]))
        elif len(color) == 6:  # pyte keeps 256 and true colours as rrggbb
            try:
                r, g, b = int(color[:2], 16), int(color[2:4], 16), int(color[4:], 16)
            except ValueError:
                continue
            codes.append(f"{truecolor};2;{r};{g};{b}")
    return f"\x1b[{';'.join(codes)}m"


def render_line(line: Any, columns: int) -> str:
    """One pyte buffer line as text with SGR attributes, trailing default blanks left out."""
    cells = [line[x] for x in range(columns)]
    end = len(cells)
    while end and cells[end - 1].data in (" ", "") and _style(cells[end - 1]) == _DEFAULT:
        end -= 1
    out: list[str] = []
    current = _DEFAULT
    for char in cells[:end]:
        if char.data == "":  # the second cell of a wide character
            continue
        style = _style(char)
        if style != current:
            out.append(_sgr(style))
            current = style
        out.append(char.data)
    if current != _DEFAULT:
        out.append("\x1b[0m")
    return "".join(out)


class Screen(pyte.Screen):
    """A pyte screen that keeps the lines scrolled off its top (a full-screen scroll) as
    rendered text, at most ``scrollback_bytes`` of UTF-8, oldest dropped first."""

    def __init__(self, columns: int, lines: int, scrollback_bytes: int) -> None:
        super().__init__(columns, lines)
        self.scrollback: deque[str] = deque()
        self.scrollback_size = 0
        self.scrollback_bytes = scrollback_bytes

    def index(self) -> None:
        top, bottom = self.margins or pyte.screens.Margins(0, self.lines - 1)
        if self.cursor.y == bottom and top == 0 and self.scrollback_bytes > 0:
            line = render_line(self.buffer[top], self.columns)
            self.scrollback.append(line)
            self.scrollback_size += len(line.encode()) + 2
            while self.scrollback_size > self.scrollback_bytes and self.scrollback:
                self.scrollback_size -= len(self.scrollback.popleft().encode()) + 2
        super().index()
        self.dirty.clear()  # nobody reads it: keep it from growing

    def restore(self) -> str:
        """Written to a fresh xterm of this size: the scrollback, then the screen, then the cursor."""
        rows = [render_line(self.buffer[y], self.columns) for y in range(self.lines)]
        parts = ["\x1bc", *(line + "\r\n" for line in self.scrollback), "\r\n".join(rows),
                 f"\x1b[{self.cursor.y + 1};{self.cursor.x + 1}H"]
        if self.cursor.hidden:
            parts.append("\x1b[?25l")
        return "".join(parts)


class ParseBudget:
    """How many characters the screen models of every terminal may parse in one second, together.

    pyte parses about 1 MB/s on the event loop, so the budget is the host's, not a terminal's:
    ten terminals printing at once must not spend ten times the loop's time on screens."""

    def __init__(self, chars_per_second: int = 256 * 1024) -> None:
        self.chars_per_second = chars_per_second
        self.window_start = float("-inf")
        self.spent = 0

    def take(self, chars: int, now: float) -> bool:
        """Charge ``chars`` to this second's budget; False once it is spent."""
        if now - self.window_start >= 1.0:
            self.window_start, self.spent = now, 0
        self.spent += chars
        return self.spent <= self.chars_per_second


class Model:
    """A screen and the stream that feeds it decoded text, kept off the hot path in a flood.

    While programs print at an interactive pace every piece is parsed at once. When the host's
    ``ParseBudget`` for this second is spent (a ``cat`` of a big file, a build log, many
    terminals at once), the screen of the terminal that went over is left behind ("stale") and
    only its last ``scrollback_bytes`` of text are kept; its next restore (or resize) rebuilds the
    screen from that tail, which for scrolling output is the same screen. Output to watchers is
    never held up by the model."""

    def __init__(self, rows: int, cols: int, scrollback_bytes: int, budget: ParseBudget | None = None) -> None:
        self.rows, self.cols, self.scrollback_bytes = rows, cols, scrollback_bytes
        self.budget = budget or ParseBudget()
        self.tail: deque[str] = deque()  # the last text written, at most ~scrollback_bytes
        self.tail_chars = 0
        self.stale = False
        self.rebuilds = 0
        self._new_screen()

    def _new_screen(self) -> None:
        self.screen = Screen(self.cols, self.rows, self.scrollback_bytes)
        self.stream = pyte.Stream(self.screen)

    def feed(self, text: str, now: float) -> None:
        self.tail.append(text)
        self.tail_chars += len(text)
        keep = max(self.scrollback_bytes, self.rows * self.cols * 4)
        while self.tail_chars - len(self.tail[0]) >= keep:
            self.tail_chars -= len(self.tail.popleft())
        if self.stale:
            return
        if not self.budget.take(len(text), now):  # a flood: stop parsing, rebuild from the tail later
            self.stale = True
            return
        self.stream.feed(text)

    def _current(self) -> None:
        """Bring a stale screen up to date: a fresh one fed the kept tail."""
        if self.stale:
            self._new_screen()
            self.stream.feed("".join(self.tail))
            self.stale = False
            self.rebuilds += 1

    def resize(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        if self.stale:
            return  # rebuilt at the new size when needed
        self.screen.resize(rows, cols)

    def restore(self) -> dict[str, Any]:
        self._current()
        return {"data": self.screen.restore(), "rows": self.screen.lines, "cols": self.screen.columns}
