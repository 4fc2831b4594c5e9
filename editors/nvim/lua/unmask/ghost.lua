-- Ghost text: one inline completion item per buffer, drawn with extmarks (0.7+: overlay + virt_lines).
local M = {}

M.ns = vim.api.nvim_create_namespace("unmask")
local shown = {} -- [bufnr] = { items, index, row, col, encoding, hl }

local function byte_col(line, character, encoding)
  if encoding == "utf-8" then
    return math.min(character, #line)
  end
  local ok, col
  if vim.fn.has("nvim-0.11") == 1 then
    ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  else
    ok, col = pcall(vim.str_byteindex, line, character, encoding == "utf-16")
  end
  return ok and col or #line
end

local function item_text(item)
  local text = item.insertText
  if type(text) == "table" then -- StringValue: a snippet
    text = vim.lsp.util.parse_snippet(text.value)
  end
  return text
end

-- The edit an item makes, seen from the cursor, or nil when it no longer fits what is typed.
-- { row, scol, ecol (bytes), text (whole new text), ghost (what the cursor has not typed yet), rest }
local function edit_of(buf, s)
  local item = s.items[s.index]
  local line = vim.api.nvim_buf_get_lines(buf, s.row, s.row + 1, false)[1] or ""
  local scol, ecol = s.col, s.col
  if item.range then -- the spec keeps it on one line
    if item.range.start.line ~= s.row or item.range["end"].line ~= s.row then
      return nil
    end
    scol = byte_col(line, item.range.start.character, s.encoding)
    ecol = byte_col(line, item.range["end"].character, s.encoding)
  end
  local text = item_text(item)
  local typed = line:sub(scol + 1, s.col)
  if scol > s.col or ecol < s.col or type(text) ~= "string" or text:sub(1, #typed) ~= typed then
    return nil
  end
  return { row = s.row, scol = scol, ecol = ecol, text = text, ghost = text:sub(#typed + 1), rest = line:sub(ecol + 1), tail = line:sub(s.col + 1) }
end

local function untab(s)
  return (s:gsub("\t", string.rep(" ", vim.bo.tabstop)))
end

local function draw(buf, s)
  vim.api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
  local e = edit_of(buf, s)
  if not e or e.ghost == "" then
    return false
  end
  local lines = vim.split(e.ghost, "\n", { plain = true })
  lines[#lines] = lines[#lines] .. e.rest
  -- The first line is drawn over the rest of the cursor line, as it will read after accepting.
  local first = untab(lines[1])
  local pad = vim.fn.strdisplaywidth(e.tail) - vim.fn.strdisplaywidth(first)
  if pad > 0 then
    first = first .. string.rep(" ", pad)
  end
  local mark = { hl_mode = "combine" }
  if first ~= "" then
    mark.virt_text, mark.virt_text_pos = { { first, s.hl } }, "overlay"
  end
  if #lines > 1 then
    mark.virt_lines = {}
    for i = 2, #lines do
      table.insert(mark.virt_lines, { { untab(lines[i]), s.hl } })
    end
  end
  vim.api.nvim_buf_set_extmark(buf, M.ns, s.row, s.col, mark)
  return true
end

-- Shows items (an InlineCompletionItem[]) at the cursor position row/col (0-based, col in bytes).
function M.show(buf, items, row, col, encoding, hl)
  shown[buf] = { items = items, index = 1, row = row, col = col, encoding = encoding, hl = hl }
  for i = 1, #items do
    shown[buf].index = i
    if draw(buf, shown[buf]) then
      return true
    end
  end
  shown[buf] = nil
  return false
end

function M.visible(buf)
  return shown[buf] ~= nil
end

function M.at(buf, row, col)
  local s = shown[buf]
  return s ~= nil and s.row == row and s.col == col
end

function M.clear(buf)
  shown[buf] = nil
  if vim.api.nvim_buf_is_valid(buf) then
    vim.api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
  end
end

-- Moves to the next (step 1) or previous (step -1) item that still fits.
function M.cycle(buf, step)
  local s = shown[buf]
  if not s then
    return
  end
  for _ = 1, #s.items do
    s.index = (s.index - 1 + step) % #s.items + 1
    if draw(buf, s) then
      return
    end
  end
end

-- Inserts the shown item and puts the cursor after it; returns the inserted text.
function M.accept(buf)
  local s = shown[buf]
  local e = s and edit_of(buf, s)
  M.clear(buf)
  if not e then
    return nil
  end
  local lines = vim.split(e.text, "\n", { plain = true })
  vim.api.nvim_buf_set_text(buf, e.row, e.scol, e.row, e.ecol, lines)
  local last = #lines == 1 and e.scol + #lines[1] or #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { e.row + #lines, last })
  return e.text
end

return M
