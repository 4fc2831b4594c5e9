; inherits: c

;; Scopes
(class_specifier body: (field_declaration_list) @class.inner) @class.outer
(namespace_definition body: (declaration_list) @class.inner) @class.outer
(lambda_expression body: (compound_statement) @function.inner) @function.outer

;; Blocks
(declaration_list) @block.outer
