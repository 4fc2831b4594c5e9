-- Calls on an LSP client object across Neovim versions: 0.11 turned client.request(...) into
-- client:request(...).
local M = {}

local method_call = vim.fn.has("nvim-0.11") == 1

function M.call(client, name, ...)
  if method_call then
    return client[name](client, ...)
  end
  return client[name](...)
end

return M
