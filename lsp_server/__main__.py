"""python -m lsp_server [serve options]: the language server over stdio (see `unmask serve --help`)."""

import sys

from .cli import main

sys.exit(main(["serve", *sys.argv[1:]]))
