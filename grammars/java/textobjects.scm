;; Scopes
(method_declaration body: (block) @function.inner) @function.outer
(constructor_declaration body: (constructor_body) @function.inner) @function.outer
(lambda_expression body: (block) @function.inner) @function.outer
(class_declaration body: (class_body) @class.inner) @class.outer
(interface_declaration body: (interface_body) @class.inner) @class.outer
(enum_declaration body: (enum_body) @class.inner) @class.outer
(record_declaration body: (class_body) @class.inner) @class.outer

;; Blocks
(block) @block.outer
(constructor_body) @block.outer
(class_body) @block.outer
(interface_body) @block.outer
(switch_block) @block.outer
