;; Imports
(preproc_include) @import
