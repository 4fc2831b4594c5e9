;; Scopes
(function_item body: (block) @function.inner) @function.outer
(closure_expression body: (block) @function.inner) @function.outer
(impl_item body: (declaration_list) @class.inner) @class.outer
(trait_item body: (declaration_list) @class.inner) @class.outer
(mod_item body: (declaration_list) @class.inner) @class.outer
(struct_item body: (field_declaration_list) @class.inner) @class.outer
(enum_item body: (enum_variant_list) @class.inner) @class.outer

;; Blocks
(block) @block.outer
(declaration_list) @block.outer
(field_declaration_list) @block.outer
(enum_variant_list) @block.outer
(match_block) @block.outer
