-- Headless Neovim (0.7+) with the repository's plugin against the real server, for the code action commands:
--   UNMASK_MODEL=dir PYTHON=python UNMASK_REPORT=out.json \
--     nvim --headless --clean -u NONE -c "luafile tests/editors/nvim_actions.lua"
-- Opens a Python buffer, waits for the model, selects "a + b" charwise in visual mode and runs
-- :'<,'>UnmaskRewrite, then :UnmaskFillHoles on a buffer with two <|fill|> holes. Writes the buffer's lines
-- before and after each to $UNMASK_REPORT; tests/test_editors.py asserts on them.
local repo = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h:h")
vim.opt.runtimepath:prepend(repo .. "/editors/nvim")
local report = {}
local unmask = require("unmask")

local function finish(err)
  report.error = err and tostring(err) or nil
  local out = assert(io.open(assert(os.getenv("UNMASK_REPORT")), "w"))
  out:write(vim.fn.json_encode(report))
  out:close()
  vim.cmd("qa!")
end

local function lines(buf)
  return vim.api.nvim_buf_get_lines(buf, 0, -1, false)
end

local function open(name, text)
  vim.cmd("edit " .. vim.fn.fnameescape(vim.fn.tempname() .. name))
  local buf = vim.api.nvim_get_current_buf()
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, text)
  return buf
end

-- Runs the command and waits until its action was applied or declined.
local function run(name, command)
  local done = false
  local original = unmask.code_action
  unmask.code_action = function(n, opts)
    original(n, opts, function()
      done = true
    end)
  end
  vim.cmd(command)
  unmask.code_action = original
  report[name .. "_done"] = vim.wait(60000, function()
    return done
  end, 50)
end

local function main()
  unmask.setup({
    cmd = { os.getenv("PYTHON") or "python3", "-m", "lsp_server", "--model", assert(os.getenv("UNMASK_MODEL")) },
  })
  vim.cmd("filetype on")
  local buf = open(".py", { "import os", "", "def add(a, b):", "    return a + b", "", "print(add(1, 2))" })
  report.loaded = vim.wait(60000, function()
    local s = unmask.status()
    return s ~= nil and s.state == "ready"
  end, 50)
  report.before = lines(buf)
  vim.api.nvim_win_set_cursor(0, { 4, 11 }) -- on the "a" of "a + b"
  vim.cmd("normal! v4l\27") -- a charwise selection of "a + b"
  run("rewrite", "'<,'>UnmaskRewrite")
  report.after = lines(buf)

  local holes = open("_holes.py", { "total = <|fill|>", "", "def f(a):", "    <|fill|>", "", "print(f(1))" })
  report.holes_before = lines(holes)
  run("fill", "UnmaskFillHoles")
  report.holes_after = lines(holes)
end

local ok, err = pcall(main)
finish(not ok and err or nil)
