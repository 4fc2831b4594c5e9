"""Ghost text in a real editor, as a PNG: Neovim with editors/nvim in tmux, captured and drawn with Pillow.

    python editors/screenshot.py [--model DIR] [-o editors/ghost-text.png]

Needs nvim 0.7+, tmux, Pillow and matplotlib (for its DejaVu Sans Mono). Opens SOURCE, types TYPED at the end
of line LINE in insert mode and captures the screen once ghost text is shown.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
SOURCE = '''import json
from pathlib import Path


def load_config(path):
    """Read a JSON config file, or return an empty dict."""
    path = Path(path)
    if not path.exists():
        return {}
    with open(path) as f:
        return json.load(f)


def save_config(path, config):
    with open(path, "w") as f:
        '''
LINE, TYPED = 16, "json"  # 1-based line to append to, what to type there
COLS, ROWS = 84, 20
GHOST = (127, 132, 142)  # UnmaskGhost in this picture; the plugin's default links to Comment
INIT = """
vim.opt.runtimepath:prepend({nvim!r})
vim.o.termguicolors, vim.o.number, vim.o.laststatus, vim.o.showmode = true, true, 2, true
vim.o.statusline = " %t %= %{{v:lua.require'unmask'.statusline()}} "
vim.cmd([[
  hi Normal guifg=#d4d4d4 guibg=#1e1e1e
  hi LineNr guifg=#5a5a5a guibg=#1e1e1e
  hi StatusLine guifg=#e0e0e0 guibg=#3a3d41 gui=NONE
  hi Comment guifg=#6a9955
  hi String guifg=#ce9178
  hi Statement guifg=#c586c0
  hi Identifier guifg=#9cdcfe
  hi Function guifg=#dcdcaa
  hi UnmaskGhost guifg=#{ghost:02x}{ghost2:02x}{ghost3:02x} gui=italic
  syntax on
]])
require("unmask").setup({{ cmd = {cmd} }})
"""


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", "unmask-screenshot", *args], check=True, capture_output=True,
                          text=True).stdout


def wait_for(predicate, what: str, timeout: float, *escapes: str) -> str:
    deadline = time.monotonic() + timeout
    while not predicate(screen := tmux("capture-pane", *escapes, "-p", "-t", "shot")):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}:\n" + tmux("capture-pane", "-p", "-t", "shot"))
        time.sleep(0.2)
    return screen


def capture(model: str | None) -> tuple[str, tuple[int, int]]:
    cmd = [sys.executable, "-m", "lsp_server"] + (["--model", model] if model else [])
    with tempfile.TemporaryDirectory() as tmp:
        init, source = Path(tmp, "init.lua"), Path(tmp, "config.py")
        ghost = dict(ghost=GHOST[0], ghost2=GHOST[1], ghost3=GHOST[2])
        lua_cmd = "{" + ", ".join(f"{c!r}" for c in cmd) + "}"
        init.write_text(INIT.format(nvim=str(REPO / "editors" / "nvim"), cmd=lua_cmd, **ghost))
        source.write_text(SOURCE)
        size = ["-x", str(COLS), "-y", str(ROWS)]
        tmux("-f", "/dev/null", "new-session", "-d", "-s", "shot", *size, "-c", str(REPO),
             f"TERM=tmux-256color nvim -u {init} {source}")
        try:
            ready = re.compile(r"unmask( \d+ms)?$")  # the status line once the model is loaded
            wait_for(lambda s: ready.search(s.splitlines()[-2].strip()) is not None, "the model", 120)
            tmux("send-keys", "-t", "shot", f"{LINE}G", "A")
            time.sleep(0.3)
            tmux("send-keys", "-t", "shot", "-l", TYPED)
            ghost_sgr = "38;2;{};{};{}".format(*GHOST)
            wait_for(lambda s: ghost_sgr in s, "ghost text", 60, "-e")
            time.sleep(0.3)  # the status line's latency follows the reply
            x, y = map(int, tmux("display", "-p", "-t", "shot", "#{cursor_x} #{cursor_y}").split())
            return wait_for(lambda s: ghost_sgr in s, "ghost text", 1, "-e"), (x, y)
        finally:
            tmux("kill-server")


PALETTE = [(0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16), (36, 114, 200), (188, 63, 188),
           (17, 168, 205), (229, 229, 229), (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67),
           (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255)]
SGR = re.compile(r"\x1b\[([0-9;:]*)m")


def xterm256(n: int) -> tuple[int, int, int]:
    if n < 16:
        return PALETTE[n]
    if n >= 232:
        v = 8 + 10 * (n - 232)
        return v, v, v
    n -= 16
    return tuple(0 if c == 0 else 55 + 40 * c for c in (n // 36, n // 6 % 6, n % 6))


def parse(line: str, style: dict) -> list[tuple[str, dict]]:
    """(text, style) runs of one captured line; style carries fg, bg, bold, italic across lines."""
    runs, pos = [], 0
    for m in SGR.finditer(line):
        if m.start() > pos:
            runs.append((line[pos:m.start()], dict(style)))
        codes = [int(c or 0) for c in m.group(1).replace(":", ";").split(";")]
        while codes:
            c = codes.pop(0)
            if c == 0:
                style.clear()
            elif c in (1, 3):
                style["bold" if c == 1 else "italic"] = True
            elif c in (22, 23):
                style.pop("bold" if c == 22 else "italic", None)
            elif c in (38, 48):
                key = "fg" if c == 38 else "bg"
                mode = codes.pop(0)
                style[key] = tuple(codes[:3]) if mode == 2 else xterm256(codes[0])
                codes = codes[3:] if mode == 2 else codes[1:]
            elif c in (39, 49):
                style.pop("fg" if c == 39 else "bg", None)
            elif 30 <= c <= 37 or 90 <= c <= 97:
                style["fg"] = PALETTE[c - 30 if c < 90 else c - 82]
            elif 40 <= c <= 47 or 100 <= c <= 107:
                style["bg"] = PALETTE[c - 40 if c < 100 else c - 92]
        pos = m.end()
    runs.append((line[pos:], dict(style)))
    return runs


def render(screen: str, cursor: tuple[int, int], out: Path, size: int = 16) -> None:
    fonts = Path(matplotlib.get_data_path(), "fonts", "ttf")
    styles = {(0, 0): "", (1, 0): "-Bold", (0, 1): "-Oblique", (1, 1): "-BoldOblique"}
    face = {key: ImageFont.truetype(str(fonts / f"DejaVuSansMono{n}.ttf"), size) for key, n in styles.items()}
    cw, ch, pad = face[0, 0].getlength("M"), round(size * 1.35), 12  # cw unrounded: runs stay on the grid
    bg, fg = (30, 30, 30), (212, 212, 212)
    img = Image.new("RGB", (round(COLS * cw) + 2 * pad, ROWS * ch + 2 * pad), bg)
    draw, style = ImageDraw.Draw(img), {}
    for row, line in enumerate(screen.rstrip("\n").split("\n")[:ROWS]):
        col = 0
        for text, s in parse(line, style):
            if not text:
                continue
            x, y = pad + col * cw, pad + row * ch
            if "bg" in s:
                draw.rectangle([x, y, x + len(text) * cw - 1, y + ch - 1], fill=s["bg"])
            draw.text((x, y + (ch - size) // 2 - 1), text, font=face[int("bold" in s), int("italic" in s)],
                      fill=s.get("fg", fg))
            col += len(text)
    x, y = pad + cursor[0] * cw, pad + cursor[1] * ch
    draw.rectangle([x, y + 1, x + 1, y + ch - 2], fill=(174, 175, 173))
    img.save(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="checkpoint folder (default: the embedded model)")
    p.add_argument("-o", "--out", type=Path, default=REPO / "editors" / "ghost-text.png")
    args = p.parse_args()
    screen, cursor = capture(args.model)
    render(screen, cursor, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
