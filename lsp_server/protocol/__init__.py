"""The LSP wire: the JSON-RPC framing read from stdin (framing.py), pygls' protocol with unreadable
messages answered and params read with strict JSON types (protocol.py, strict.py), and the conversions
between LSP positions and code-point offsets, and from suggestions to LSP items (convert.py)."""
