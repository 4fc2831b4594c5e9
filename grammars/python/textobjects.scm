;; Scopes: the outer node and its body; the header is the text between them
(function_definition body: (block) @function.inner) @function.outer
(class_definition body: (block) @class.inner) @class.outer

;; Blocks: bodies a completion may fill
(block) @block.outer
