; inherits: javascript

;; Imports
(import_alias) @import
