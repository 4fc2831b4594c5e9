"""The code actions (*Rewrite selection*, *Fill holes*, *Complete this body*): offered, resolved and run as
commands on the event loop (actions.py), computed on the engine thread with infill.refactor
(refactors.py)."""
