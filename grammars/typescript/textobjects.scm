; inherits: javascript

;; Scopes
(abstract_class_declaration body: (class_body) @class.inner) @class.outer
(interface_declaration body: (interface_body) @class.inner) @class.outer
(enum_declaration body: (enum_body) @class.inner) @class.outer
(internal_module body: (statement_block) @class.inner) @class.outer
(module body: (statement_block) @class.inner) @class.outer

;; Blocks
(interface_body) @block.outer
(enum_body) @block.outer
