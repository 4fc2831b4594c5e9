-- The plugin's ghost text on its own (no server): items in, extmarks and buffer edits out.
--   UNMASK_REPORT=out.json nvim --headless --clean -u NONE -c "luafile tests/editors/nvim_ghost.lua"
local repo = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h:h")
vim.opt.runtimepath:prepend(repo .. "/editors/nvim")
local ghost = require("unmask.ghost")
vim.o.virtualedit = "onemore" -- the cursor may sit after the last character, as in insert mode
local buf = vim.api.nvim_get_current_buf()
local report = {}

local function marks()
  local out = {}
  for _, m in ipairs(vim.api.nvim_buf_get_extmarks(buf, ghost.ns, 0, -1, { details = true })) do
    local d = m[4]
    local virt_lines = {}
    for _, l in ipairs(d.virt_lines or {}) do
      table.insert(virt_lines, l[1][1])
    end
    table.insert(out, { row = m[2], col = m[3], text = d.virt_text and d.virt_text[1][1] or "", lines = virt_lines })
  end
  return out
end

-- Sets the buffer, shows items at (row, col) and records what is drawn, then what accepting leaves.
local function case(name, lines, row, col, items, step)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.api.nvim_win_set_cursor(0, { row + 1, col })
  local shown = ghost.show(buf, items, row, col, "utf-16", "UnmaskGhost")
  if step then
    ghost.cycle(buf, step)
  end
  local r = { shown = shown, marks = marks() }
  r.accepted = ghost.accept(buf)
  r.lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  r.cursor = vim.api.nvim_win_get_cursor(0)
  r.marks_after = #marks()
  report[name] = r
end

local function range(line, s, e)
  return { start = { line = line, character = s }, ["end"] = { line = line, character = e } }
end

-- end of line, no range: inserted at the cursor
case("eol", { "x = " }, 0, 4, { { insertText = "compute(1)" } })
-- the item repeats the typed word and replaces the closer after the cursor
case("mid_line", { "print(val)" }, 0, 9, { { insertText = "value + 1)", range = range(0, 6, 10) } })
-- several lines: the first drawn at the cursor, the rest as virtual lines, the line's tail after the last
case("multi_line", { "def f(a):", "    ", "g()" }, 1, 4,
  { { insertText = "if a:\n        return 1\n    return 0", range = range(1, 4, 4) } })
-- an item that no longer fits what is typed is not shown; the next one is
case("stale_then_fit", { "foo = ba" }, 0, 8,
  { { insertText = "qux", range = range(0, 6, 8) }, { insertText = "bar()", range = range(0, 6, 8) } })
-- cycling moves to the next item
case("cycle", { "n = " }, 0, 4, { { insertText = "1" }, { insertText = "2" } }, 1)
-- utf-16 columns: "é" is one unit before the cursor but two bytes
case("utf16", { "s = 'é'" }, 0, 8, { { insertText = ".upper()", range = range(0, 7, 7) } })
-- nothing fits: nothing shown, accept is a no-op
case("none", { "abc" }, 0, 3, { { insertText = "zzz", range = range(0, 0, 3) } })

local out = assert(io.open(assert(os.getenv("UNMASK_REPORT")), "w"))
out:write(vim.fn.json_encode(report))
out:close()
vim.cmd("qa!")
