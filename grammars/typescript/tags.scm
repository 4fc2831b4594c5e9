; inherits: javascript

;; Definitions
(function_signature name: (_) @name) @definition.function
(abstract_class_declaration name: (_) @name) @definition.class
(interface_declaration name: (_) @name) @definition.interface
(type_alias_declaration name: (_) @name) @definition.type
(enum_declaration name: (_) @name) @definition.type
(abstract_method_signature name: (_) @name) @definition.method
(method_signature name: (_) @name) @definition.method
(internal_module name: (_) @name) @definition.module
