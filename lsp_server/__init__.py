"""unmask's language server (`python -m lsp_server`, `unmask serve`) and command line (`unmask`)."""

__version__ = "0.1.0"
