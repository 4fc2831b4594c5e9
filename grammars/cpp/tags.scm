; inherits: c

;; Definitions
(class_specifier name: (_) @name body: (_)) @definition.class
(namespace_definition name: (_) @name) @definition.module
(field_declaration declarator: (function_declarator declarator: (_) @name)) @definition.method
(alias_declaration name: (_) @name) @definition.type
