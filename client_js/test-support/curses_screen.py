"""A small full-screen (curses) program for client_js/test/terminal-e2e.test.mjs: a box, a title
on row 2, the terminal's size on the second-to-last row; q quits and prints "curses done"."""

import curses


def main(screen: "curses.window") -> None:
    curses.curs_set(0)
    screen.clear()
    rows, cols = screen.getmaxyx()
    screen.box()
    screen.addstr(2, 4, "bridge terminal test")
    screen.addstr(rows - 2, 4, f"size {rows}x{cols}: press q")
    screen.refresh()
    while screen.getch() != ord("q"):
        pass


curses.wrapper(main)
print("curses done", flush=True)
