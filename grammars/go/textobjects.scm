;; Scopes
(function_declaration body: (block) @function.inner) @function.outer
(method_declaration body: (block) @function.inner) @function.outer
(func_literal body: (block) @function.inner) @function.outer
(type_declaration (type_spec type: (struct_type (field_declaration_list) @class.inner))) @class.outer
(type_declaration (type_spec type: (interface_type) @class.inner)) @class.outer

;; Blocks
(block) @block.outer
(field_declaration_list) @block.outer
(literal_value) @block.outer
