-- The server's code actions (refactor.rewrite.unmask.*) for a range of a buffer: asked of the unmask client
-- only, resolved, and applied unless the buffer changed meanwhile. Neovim 0.7's vim.lsp.buf.code_action has
-- neither `filter` nor `apply`, so this sends the requests itself.
local rpc = require("unmask.rpc")

local M = {}

M.kinds = {
  rewrite = "refactor.rewrite.unmask.rewriteSelection",
  fill = "refactor.rewrite.unmask.fillHoles",
  body = "refactor.rewrite.unmask.completeBody",
}

-- An LSP position for row (0-based) and byte column col in the client's encoding.
local function position(c, buf, row, col)
  local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
  col = math.min(col, #line)
  if col > 0 and c.offset_encoding ~= "utf-8" then
    col = vim.lsp.util.character_offset(buf, row, col, c.offset_encoding)
  end
  return { line = row, character = col }
end

-- The range a command names: the last charwise visual selection when the command was given over it, whole
-- lines for any other range, the cursor without one. Rows 1-based as in marks and command ranges.
function M.command_range(c, buf, opts)
  if opts.range == 0 then
    local cursor = vim.api.nvim_win_get_cursor(0)
    local at = position(c, buf, cursor[1] - 1, cursor[2])
    return { start = at, ["end"] = at }
  end
  local first, last = vim.api.nvim_buf_get_mark(buf, "<"), vim.api.nvim_buf_get_mark(buf, ">")
  if vim.fn.visualmode() == "v" and first[1] == opts.line1 and last[1] == opts.line2 then
    local line = vim.api.nvim_buf_get_lines(buf, last[1] - 1, last[1], false)[1] or ""
    local width = #vim.fn.strcharpart(line:sub(last[2] + 1), 0, 1) -- the last character is selected too
    return { start = position(c, buf, first[1] - 1, first[2]), ["end"] = position(c, buf, last[1] - 1, last[2] + width) }
  end
  local last_line = vim.api.nvim_buf_get_lines(buf, opts.line2 - 1, opts.line2, false)[1] or ""
  return { start = position(c, buf, opts.line1 - 1, 0), ["end"] = position(c, buf, opts.line2 - 1, #last_line) }
end

local function apply(c, buf, tick, action)
  if vim.api.nvim_buf_get_changedtick(buf) ~= tick then
    vim.notify("unmask: the buffer changed meanwhile; not applied", vim.log.levels.WARN)
  elseif action.edit then
    vim.lsp.util.apply_workspace_edit(action.edit, c.offset_encoding)
  end -- no edit: the server said why (window/showMessage)
end

-- Asks for the action of this kind (a value of M.kinds) over range and applies it; on_done() afterwards.
function M.run(c, buf, kind, range, on_done)
  on_done = on_done or function() end
  local tick = vim.api.nvim_buf_get_changedtick(buf)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    range = range,
    context = { diagnostics = {}, only = { kind } },
  }
  rpc.call(c, "request", "textDocument/codeAction", params, function(err, result)
    local action
    for _, a in ipairs(result or {}) do
      if a.kind == kind then
        action = action or a
      end
    end
    if err or not action then
      vim.notify("unmask: " .. (err and err.message or "that action does not apply here"), vim.log.levels.INFO)
      return on_done()
    end
    rpc.call(c, "request", "codeAction/resolve", action, function(resolve_err, resolved)
      if resolve_err then
        vim.notify("unmask: " .. resolve_err.message, vim.log.levels.WARN)
      elseif resolved then
        apply(c, buf, tick, resolved)
      end
      on_done()
    end, buf)
  end, buf)
end

return M
