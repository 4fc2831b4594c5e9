-- Headless Neovim (0.7+) with the repository's plugin against the real server:
--   UNMASK_MODEL=dir PYTHON=python UNMASK_REPORT=out.json \
--     nvim --headless --clean -u NONE -c "luafile tests/editors/nvim_completion.lua"
-- Opens a Python buffer through the plugin's FileType hook and waits for the model. Then
--   1. textDocument/completion at the end of "    return ", the request omnifunc and nvim-cmp send;
--   2. keystrokes: "A" and "a" (insert mode, typing) show ghost text automatically, <C-]> dismisses it,
--      <M-\> asks again and <Tab> accepts.
-- Writes what it saw to $UNMASK_REPORT; tests/test_editors.py asserts on it.
local repo = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h:h")
vim.opt.runtimepath:prepend(repo .. "/editors/nvim")
local v = vim.version()
local report = { nvim = string.format("%d.%d.%d", v.major, v.minor, v.patch) }
local unmask = require("unmask")
local buf, ns

local function finish(err)
  report.error = err and tostring(err) or nil
  local out = assert(io.open(assert(os.getenv("UNMASK_REPORT")), "w"))
  out:write(vim.fn.json_encode(report))
  out:close()
  vim.cmd("qa!")
end

local function marks()
  return vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })
end

local function lines()
  return vim.api.nvim_buf_get_lines(buf, 0, -1, false)
end

-- Keystrokes go through the main loop (mappings, autocmds) once the coroutine yields.
local co
local function sleep(ms)
  vim.defer_fn(function()
    local ok, err = coroutine.resume(co)
    if not ok then
      finish(err)
    end
  end, ms)
  coroutine.yield()
end

local function wait_for(predicate, timeout_ms)
  for _ = 1, timeout_ms / 20 do
    if predicate() then
      return true
    end
    sleep(20)
  end
  return predicate()
end

local function type_keys(keys)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(keys, true, false, true), "m", false)
end

local function setup_and_complete()
  unmask.setup({
    cmd = { os.getenv("PYTHON") or "python3", "-m", "lsp_server", "--model", assert(os.getenv("UNMASK_MODEL")) },
  })
  vim.cmd("filetype on")
  vim.cmd("edit " .. vim.fn.fnameescape(vim.fn.tempname() .. ".py"))
  buf = vim.api.nvim_get_current_buf()
  ns = vim.api.nvim_get_namespaces()["unmask"]
  report.filetype, report.omnifunc = vim.bo[buf].filetype, vim.bo[buf].omnifunc
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, { "def add(a, b):", "    return ", "", "", "print(add(1, 2))" })

  report.loaded = vim.wait(30000, function()
    local s = unmask.status()
    return s ~= nil and s.state ~= "loading"
  end, 50)
  report.status, report.statusline = unmask.status(), unmask.statusline()

  local params = { textDocument = { uri = vim.uri_from_bufnr(buf) }, position = { line = 1, character = 11 } }
  local replies = vim.lsp.buf_request_sync(buf, "textDocument/completion", params, 20000)
  for _, reply in pairs(replies or {}) do
    report.completion = reply.result or { error = reply.err }
  end
end

local function ghost_shown()
  return wait_for(function()
    return #marks() > 0
  end, 20000)
end

local function ghost_text()
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  type_keys("A")
  report.insert_mode = wait_for(function()
    return vim.fn.mode() == "i"
  end, 2000)
  type_keys("a")
  report.typed = ghost_shown() and lines()
  report.ghost = marks()

  type_keys("<C-]>")
  wait_for(function()
    return #marks() == 0
  end, 2000)
  report.after_dismiss = { marks = #marks(), lines = lines() }

  type_keys("<M-\\>")
  report.triggered = ghost_shown() and marks()
  report.cursor_before_accept = vim.api.nvim_win_get_cursor(0)
  type_keys("<Tab>")
  wait_for(function()
    return lines()[2] ~= report.typed[2]
  end, 2000)
  report.accepted = lines()
  report.cursor_after_accept = vim.api.nvim_win_get_cursor(0)
  report.mode = vim.fn.mode()
end

local ok, err = pcall(setup_and_complete)
if not ok then
  finish(err)
else
  co = coroutine.create(function()
    ghost_text()
    finish()
  end)
  local resumed, failure = coroutine.resume(co)
  if not resumed then
    finish(failure)
  end
end
