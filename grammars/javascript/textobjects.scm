;; Scopes
(function_declaration body: (statement_block) @function.inner) @function.outer
(generator_function_declaration body: (statement_block) @function.inner) @function.outer
(function_expression body: (statement_block) @function.inner) @function.outer
(arrow_function body: (statement_block) @function.inner) @function.outer
(method_definition body: (statement_block) @function.inner) @function.outer
(class_declaration body: (class_body) @class.inner) @class.outer
(class body: (class_body) @class.inner) @class.outer

;; Blocks
(statement_block) @block.outer
(class_body) @block.outer
(switch_body) @block.outer
