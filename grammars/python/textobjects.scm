;; Scopes: the outer node and its body; the header is the text between them
(function_definition body: (block) @function.inner) @function.outer
(class_definition body: (block) @class.inner) @class.outer

;; Blocks: bodies a completion may fill
(block) @block.outer

;; Placeholders: a body holding only `pass` or `...`, which completing the body replaces
(block . (pass_statement) .) @block.stub
(block . (expression_statement (ellipsis)) .) @block.stub
