; inherits: c

;; Comments and strings
(raw_string_literal) @string
