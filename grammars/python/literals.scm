;; Comments and strings
(comment) @comment
(string) @string
