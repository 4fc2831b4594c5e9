;; Imports
(import_statement) @import
