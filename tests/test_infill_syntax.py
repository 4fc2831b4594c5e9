"""infill/syntax.py: the indentation unit guessed from the lines near the cursor."""

from infill.syntax import guess_indent_unit

ALIGNED = '''class Key:
    def __eq__(self, other):
        try:
            return (self.key == other.key and
                    self.item == other.item)
        except AttributeError:
            return False

    def __ne__(self, other):
        pass
'''


def test_aligned_continuation_lines_do_not_set_the_unit():
    # the continuation line sits 8 columns right of `return`, a docstring-like odd step is rarer than 4
    assert guess_indent_unit(ALIGNED, ALIGNED.index("pass"), "  ") == "    "


def test_two_space_files_keep_two_spaces():
    text = "def f(x):\n  if x:\n    return 1\n  return 2\n\ndef g():\n  pass\n"
    assert guess_indent_unit(text, text.index("pass"), "    ") == "  "


def test_tabs_win_and_no_steps_fall_back_to_the_default():
    assert guess_indent_unit("def f():\n\treturn 1\n", 10, "    ") == "\t"
    assert guess_indent_unit("x = 1\ny = 2\n", 3, "    ") == "    "


def test_a_tie_takes_the_smaller_step():
    text = "x\na:\n  b:\n      c\n"  # one step of 2, one of 4
    assert guess_indent_unit(text, 0, "    ") == "  "
