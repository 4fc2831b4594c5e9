;; Imports (the package declaration too)
(package_declaration) @import
(import_declaration) @import
