-- unmask for Neovim 0.7+: starts the server through vim.lsp, shows textDocument/inlineCompletion as ghost
-- text and leaves textDocument/completion to omnifunc or a completion plugin.
local actions = require("unmask.actions")
local ghost = require("unmask.ghost")
local call = require("unmask.rpc").call

local M = { opts = nil, enabled = true }
local state = { client_id = nil, root = nil, pending = nil, status = nil, timer = nil }

local function server_cmd(o)
  if o.cmd then
    return o.cmd
  end
  local cmd = { o.python, "-m", "lsp_server" }
  for _, flag in ipairs({ "model", "device", "dtype" }) do
    if o[flag] then
      vim.list_extend(cmd, { "--" .. flag, o[flag] })
    end
  end
  return cmd
end

local function client()
  return state.client_id and vim.lsp.get_client_by_id(state.client_id)
end

function M.refresh_status(on_done)
  local c = client()
  if not c then
    if on_done then
      on_done(state.status)
    end
    return
  end
  call(c, "request", "unmask/status", vim.empty_dict(), function(err, result)
    if not err and result then -- a failed load is also shown by the server (window/showMessage)
      state.status = result
      vim.cmd("redrawstatus")
    end
    if on_done then
      on_done(state.status)
    end
  end)
end

local function poll_until_loaded()
  if state.client_id == nil then
    return
  end
  M.refresh_status(function(s)
    if s == nil or s.state == "loading" then
      vim.defer_fn(poll_until_loaded, 250)
    end
  end)
end

local function hide_completion(c)
  if c.resolved_capabilities then -- 0.7
    c.resolved_capabilities.completion = false
  end
  c.server_capabilities.completionProvider = nil
end

local function client_config(o)
  local capabilities = vim.lsp.protocol.make_client_capabilities()
  capabilities.textDocument.inlineCompletion = { dynamicRegistration = false }
  return {
    name = "unmask",
    cmd = server_cmd(o),
    root_dir = state.root,
    init_options = next(o.server) and o.server or vim.empty_dict(), -- {} would go out as []
    capabilities = capabilities,
    on_init = function(c)
      if not o.completion then
        hide_completion(c)
      end
      vim.schedule(poll_until_loaded) -- the client is not reachable by id until on_init returns (0.7)
    end,
    on_exit = function()
      state.client_id, state.pending = nil, nil
    end,
  }
end

local function cancel_pending()
  local p = state.pending
  state.pending = nil
  if p then
    call(p.client, "cancel_request", p.id)
  end
end

-- Sends textDocument/inlineCompletion for the cursor; trigger_kind 1 = invoked, 2 = automatic.
local function request(buf, trigger_kind)
  local c = client()
  if not c or not c.server_capabilities.inlineCompletionProvider then
    return
  end
  cancel_pending()
  ghost.clear(buf)
  local win = vim.api.nvim_get_current_win()
  local cursor = vim.api.nvim_win_get_cursor(win)
  local tick = vim.api.nvim_buf_get_changedtick(buf)
  local params = vim.lsp.util.make_position_params(win, c.offset_encoding)
  params.context = { triggerKind = trigger_kind }
  local pending = { client = c }
  local ok, id = call(c, "request", "textDocument/inlineCompletion", params, function(err, result)
    if state.pending == pending then
      state.pending = nil
    end
    M.refresh_status()
    if err or not result or not vim.api.nvim_buf_is_valid(buf) then
      return
    end
    local now = vim.api.nvim_win_get_cursor(win)
    if vim.api.nvim_buf_get_changedtick(buf) ~= tick or now[1] ~= cursor[1] or now[2] ~= cursor[2] then
      return
    end
    ghost.show(buf, result.items or result, cursor[1] - 1, cursor[2], c.offset_encoding, M.opts.hl_group)
  end, buf)
  if ok then
    pending.id = id
    state.pending = pending
    vim.cmd("redrawstatus") -- statusline() shows the wait
  end
end

local function schedule(buf)
  ghost.clear(buf)
  cancel_pending()
  if not (M.enabled and M.opts.ghost_text) then
    return
  end
  state.timer = state.timer or vim.loop.new_timer()
  state.timer:stop()
  state.timer:start(M.opts.debounce_ms, 0, vim.schedule_wrap(function()
    if vim.api.nvim_get_current_buf() == buf and vim.fn.mode():sub(1, 1) == "i" then
      request(buf, 2)
    end
  end))
end

function M.trigger()
  local s = state.status
  if s and s.state ~= "ready" then
    vim.notify("unmask: model is " .. s.state, vim.log.levels.WARN)
  end
  request(vim.api.nvim_get_current_buf(), 1)
end

function M.accept()
  return ghost.accept(vim.api.nvim_get_current_buf())
end

function M.next()
  ghost.cycle(vim.api.nvim_get_current_buf(), 1)
end

function M.prev()
  ghost.cycle(vim.api.nvim_get_current_buf(), -1)
end

function M.dismiss()
  cancel_pending()
  ghost.clear(vim.api.nvim_get_current_buf())
end

function M.toggle()
  M.enabled = not M.enabled
  if not M.enabled then
    M.dismiss()
  end
  vim.notify("unmask: ghost text " .. (M.enabled and "on" or "off"))
end

-- Runs a code action ("rewrite", "fill" or "body") over opts' range (a user command's opts; {range = 0}:
-- the cursor) in the current buffer; on_done() once it is applied or declined.
function M.code_action(name, opts, on_done)
  local c, buf = client(), vim.api.nvim_get_current_buf()
  if not c then
    vim.notify("unmask: the server is not running", vim.log.levels.WARN)
    return
  end
  actions.run(c, buf, actions.kinds[name], actions.command_range(c, buf, opts or { range = 0 }), on_done)
end

-- The last unmask/status result: { model, family, device, dtype, state, error, latencies_ms }.
function M.status()
  return state.status
end

-- A short string for the statusline: "unmask: loading", "unmask 84ms", "unmask 84ms …" while waiting.
function M.statusline()
  local s = state.status
  if not client() then
    return ""
  elseif not s then
    return "unmask: starting"
  elseif s.state ~= "ready" then
    return "unmask: " .. s.state
  end
  local p50 = s.latencies_ms and s.latencies_ms.p50
  local text = p50 and string.format("unmask %dms", math.floor(p50 + 0.5)) or "unmask"
  return state.pending and text .. " …" or text
end

local function keymaps(buf, k)
  local function map(lhs, rhs, desc, expr)
    if lhs then
      vim.keymap.set("i", lhs, rhs, { buffer = buf, desc = desc, expr = expr, silent = true })
    end
  end
  map(k.accept, function()
    return ghost.visible(buf) and "<Cmd>lua require('unmask').accept()<CR>" or k.accept
  end, "unmask: accept ghost text", true)
  map(k.next, M.next, "unmask: next suggestion")
  map(k.prev, M.prev, "unmask: previous suggestion")
  map(k.dismiss, M.dismiss, "unmask: dismiss")
  map(k.trigger, M.trigger, "unmask: suggest now")
end

local function attach(buf)
  local config = client_config(M.opts)
  if vim.lsp.start then -- 0.8+: reuses the client with this name and root
    state.client_id = vim.lsp.start(config, { bufnr = buf })
  else
    state.client_id = state.client_id or vim.lsp.start_client(config)
    vim.lsp.buf_attach_client(buf, state.client_id)
  end
  if M.opts.completion and vim.bo[buf].omnifunc == "" then
    vim.bo[buf].omnifunc = "v:lua.vim.lsp.omnifunc"
  end
  keymaps(buf, M.opts.keymaps)
  local group = vim.api.nvim_create_augroup("unmask_buf_" .. buf, { clear = true })
  vim.api.nvim_create_autocmd("TextChangedI", { group = group, buffer = buf, callback = function()
    schedule(buf)
  end })
  vim.api.nvim_create_autocmd("CursorMovedI", { group = group, buffer = buf, callback = function()
    local cursor = vim.api.nvim_win_get_cursor(0)
    if not ghost.at(buf, cursor[1] - 1, cursor[2]) then
      ghost.clear(buf)
    end
  end })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, { group = group, buffer = buf, callback = M.dismiss })
end

function M.setup(opts)
  opts = opts or {}
  local defaults = require("unmask.config")
  M.opts = vim.tbl_deep_extend("force", defaults, opts)
  M.opts.filetypes = opts.filetypes or defaults.filetypes -- a list replaces the default, not merges into it
  state.root = state.root or vim.fn.getcwd()
  vim.api.nvim_set_hl(0, "UnmaskGhost", { link = "Comment", default = true })
  local group = vim.api.nvim_create_augroup("unmask", { clear = true })
  vim.api.nvim_create_autocmd("FileType", { group = group, pattern = M.opts.filetypes, callback = function(args)
    attach(args.buf)
  end })
  vim.api.nvim_create_user_command("UnmaskToggle", M.toggle, { desc = "unmask: ghost text on/off" })
  vim.api.nvim_create_user_command("UnmaskStatus", function()
    M.refresh_status(function(s)
      print(vim.inspect(s))
    end)
  end, { desc = "unmask: model, state and latency" })
  for command, name in pairs({ UnmaskRewrite = "rewrite", UnmaskFillHoles = "fill", UnmaskCompleteBody = "body" }) do
    vim.api.nvim_create_user_command(command, function(o)
      M.code_action(name, o)
    end, { range = true, desc = "unmask: code action " .. actions.kinds[name] })
  end
end

return M
