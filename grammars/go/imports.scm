;; Imports (the package clause too: it names the scope every identifier lives in)
(package_clause) @import
(import_declaration) @import
