-- Defaults for require("unmask").setup(opts); opts are merged over this table.
return {
  -- Server command. nil: { python, "-m", "lsp_server" } plus --model/--device/--dtype when set.
  cmd = nil,
  python = "python3",
  model = nil, -- checkpoint folder or Hugging Face id "org/name[@revision]"; nil: the embedded model
  device = nil, -- "cpu" | "cuda" | "cuda:1"
  dtype = nil, -- "auto" (server default) | "float32" | "bfloat16" | "float16"
  -- Server options, camelCase as in lsp_server/options.py; sent as initializationOptions.
  server = {},
  filetypes = {
    "python", "javascript", "javascriptreact", "typescript", "typescriptreact",
    "go", "rust", "java", "c", "cpp",
  },
  ghost_text = true, -- ask for inline completions while typing and show them as ghost text
  completion = true, -- keep textDocument/completion for omnifunc and completion plugins (nvim-cmp)
  debounce_ms = 100, -- the server waits completion.debounceMs more for automatic requests
  hl_group = "UnmaskGhost", -- linked to Comment unless already defined
  keymaps = { -- insert mode; false disables one
    accept = "<Tab>", -- falls back to a plain <Tab> when no ghost text is shown
    next = "<M-]>",
    prev = "<M-[>",
    dismiss = "<C-]>",
    trigger = "<M-\\>",
  },
}
