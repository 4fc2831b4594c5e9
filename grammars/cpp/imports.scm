; inherits: c

;; Imports
(using_declaration) @import
