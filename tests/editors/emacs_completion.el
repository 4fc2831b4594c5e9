;;; emacs_completion.el --- headless Emacs + eglot against the real server  -*- lexical-binding: t -*-
;;
;;   UNMASK_MODEL=dir PYTHON=python UNMASK_REPORT=out.json \
;;     emacs --batch -Q -l tests/editors/emacs_completion.el
;;
;; Loads eglot (built in from Emacs 29; Debian 12's Emacs 28 has it from `elpa-eglot'), evaluates the
;; repository's own Emacs configuration (the eglot block of editors/README.md), points its program at
;; $PYTHON and adds the model to its initializationOptions, then opens a Python file and runs `M-x eglot'.
;; Once `unmask/status' says the model is loaded, with point after "    return ":
;;   1. the candidates of `eglot-completion-at-point' (the capf), as `completion-all-completions' gives them;
;;   2. `completion-at-point' (C-M-i), which inserts the candidate and applies its textEdit.
;; Writes what it saw to $UNMASK_REPORT (JSON); tests/test_editors.py asserts on it.  Every wait has a
;; deadline, and the server is shut down at the end, so a hung server cannot hang the test.

(require 'cl-lib)
(require 'json)
(require 'package)
(require 'subr-x)

(defconst unmask-repo
  (file-name-directory (directory-file-name (file-name-directory
                                             (directory-file-name (file-name-directory load-file-name)))))
  "The repository root (this file is tests/editors/emacs_completion.el).")

(defconst unmask-deadline 75 "Seconds for the whole run; the test kills Emacs at 90.")

(defvar unmask-report (make-hash-table :test #'equal))

(defvar unmask-temporary nil "Folders this run made, deleted at the end.")

(defun unmask-temp-dir (prefix)
  (car (push (file-name-as-directory (make-temp-file prefix t)) unmask-temporary)))

(defun unmask-put (key value)
  (puthash key value unmask-report))

(defun unmask-write-report ()
  (let ((json-encoding-pretty-print nil))
    (with-temp-file (or (getenv "UNMASK_REPORT") (error "UNMASK_REPORT is not set"))
      (insert (json-encode unmask-report)))))

(defun unmask-getenv (name)
  (or (getenv name) (error "%s is not set" name)))

(defun unmask-wait (what seconds predicate)
  "Run the event loop until PREDICATE holds or SECONDS pass; signal an error naming WHAT on timeout."
  (let ((end (+ (float-time) seconds)))
    (while (not (funcall predicate))
      (when (> (float-time) end)
        (error "Timed out after %ss waiting for %s" seconds what))
      (accept-process-output nil 0.05))))

;;; eglot: built in (Emacs 29+) or Debian's elpa-eglot, which -Q leaves off the load path

(defun unmask-load-eglot ()
  (setq package-user-dir (unmask-temp-dir "unmask-elpa"))  ; none of the user's packages
  (dolist (dir '("/usr/share/emacs/site-lisp/elpa"))
    (when (file-directory-p dir)
      (add-to-list 'package-directory-list dir)))
  (package-initialize)
  (require 'eglot)
  (unmask-put "eglot" (cond ((assq 'eglot package-alist)
                             (package-version-join (package-desc-version (cadr (assq 'eglot package-alist)))))
                            ((assq 'eglot package--builtin-versions)
                             (package-version-join (cdr (assq 'eglot package--builtin-versions))))))
  (unmask-put "eglot_file" (locate-library "eglot")))

;;; the repository's Emacs configuration: the ```elisp block of editors/README.md that sets up eglot

(defun unmask-readme-config ()
  "The forms of the eglot configuration block in editors/README.md."
  (with-temp-buffer
    (insert-file-contents (expand-file-name "editors/README.md" unmask-repo))
    (let (found)
      (while (and (not found) (re-search-forward "^```elisp\n\\(\\(?:.*\n\\)*?\\)```" nil t))
        (let ((block (match-string 1)))
          (when (string-match-p "eglot-server-programs" block)
            (setq found block))))
      (unless found
        (error "editors/README.md has no elisp block for eglot-server-programs"))
      (let ((pos 0) forms)
        (condition-case nil
            (while t
              (let ((read (read-from-string found pos)))
                (push (car read) forms)
                (setq pos (cdr read))))
          (end-of-file nil))
        (nreverse forms)))))

(defun unmask-configure (python model)
  "Evaluate the README's configuration, then run PYTHON in its entry and add MODEL to its options."
  (mapc (lambda (form) (eval form t)) (unmask-readme-config))
  (let ((entry (cl-find-if (lambda (e) (and (listp (cdr e)) (member "lsp_server" (cdr e))))
                           eglot-server-programs)))
    (unless entry
      (error "The README's configuration added no lsp_server entry to eglot-server-programs"))
    (unmask-put "configured" (format "%S" entry))
    (let* ((contact (cdr entry))
           (keys (cl-position-if #'keywordp contact))
           (command (cl-subseq contact 0 keys))
           (initargs (and keys (cl-subseq contact keys)))
           (options (plist-get initargs :initializationOptions)))
      (unless (member (car command) '("python3" "python"))
        (error "Unexpected program in the README's configuration: %S" command))
      (setcar command python)
      (setq options (plist-put (copy-tree options) :model (list :path model)))
      (setcdr entry (append command (plist-put (copy-sequence initargs) :initializationOptions options)))
      (unmask-put "contact" (format "%S" (cdr entry))))))

;;; the session

(defun unmask-line (n)
  (save-excursion
    (goto-char (point-min))
    (forward-line (1- n))
    (buffer-substring-no-properties (line-beginning-position) (line-end-position))))

(defun unmask-status (server)
  (jsonrpc-request server :unmask/status (make-hash-table) :timeout 5))

(defun unmask-run ()
  (unmask-put "emacs" emacs-version)
  (unmask-load-eglot)
  (unmask-configure (unmask-getenv "PYTHON") (unmask-getenv "UNMASK_MODEL"))
  (setq eglot-connect-timeout 30
        eglot-sync-connect 3
        eglot-autoreconnect nil
        eglot-events-buffer-size 0)
  (let* ((dir (unmask-temp-dir "unmask-emacs"))
         (file (expand-file-name "example.py" dir)))
    (with-temp-file file
      (insert "def add(a, b):\n    return \n\n\nprint(add(1, 2))\n"))
    (switch-to-buffer (find-file-noselect file))
    (unmask-put "major_mode" (symbol-name major-mode))

    ;; M-x eglot: the README's entry for python-mode, found as a user's `M-x eglot' finds it
    (call-interactively #'eglot)
    (unmask-wait "eglot to connect" 35 (lambda () (and eglot--managed-mode (eglot-current-server))))
    (let ((server (eglot-current-server)))
      (unmask-put "connected" (and (jsonrpc-running-p server) eglot--managed-mode t))
      (unmask-put "server_name" (plist-get (eglot--server-info server) :name))
      (let ((caps (eglot--capabilities server)))
        (unmask-put "completion_provider" (plist-get caps :completionProvider))
        (unmask-put "inline_completion_provider" (plist-get caps :inlineCompletionProvider)))
      (unmask-put "capf" (and (memq #'eglot-completion-at-point completion-at-point-functions) t))

      ;; the model loads in the background after `initialized'
      (let (status)
        (unmask-wait "the model to load" 40
                     (lambda ()
                       (setq status (unmask-status server))
                       (or (not (equal (plist-get status :state) "loading"))
                           (progn (accept-process-output nil 0.2) nil))))
        (unmask-put "status" (list :state (plist-get status :state)
                                   :family (plist-get status :family)
                                   :error (plist-get status :error)
                                   :model (plist-get (plist-get status :options) :model)
                                   :completion (plist-get (plist-get status :options) :completion))))

      ;; 1. the capf's candidates at the end of "    return "
      (goto-char (point-min))
      (forward-line 1)
      (end-of-line)
      (unmask-put "column" (current-column))
      (pcase-let* ((`(,beg ,end ,table . ,_props) (eglot-completion-at-point))
                   (all (completion-all-completions (buffer-substring-no-properties beg end) table nil
                                                    (- end beg))))
        (when all (setcdr (last all) nil))  ; drop the base size
        (unmask-put "candidates" (vconcat (mapcar #'substring-no-properties all))))

      ;; 2. C-M-i inserts the candidate; eglot's exit function applies its textEdit
      (with-timeout (20 (error "Timed out in completion-at-point"))
        (completion-at-point))
      (unmask-put "line" (unmask-line 2))
      (unmask-put "lines" (vconcat (split-string (buffer-substring-no-properties (point-min) (point-max))
                                                 "\n")))
      (set-buffer-modified-p nil))))

(let ((server nil))
  (unwind-protect
      (condition-case err
          (with-timeout (unmask-deadline (error "Timed out after %ss" unmask-deadline))
            (unmask-run)
            (setq server (and (fboundp 'eglot-current-server) (eglot-current-server))))
        (error
         (setq server (ignore-errors (eglot-current-server)))
         (unmask-put "error" (error-message-string err))))
    (dolist (buf (buffer-list))  ; the server's stderr, for the test's failure message
      (when (string-match-p "\\` ?\\*EGLOT .* stderr\\*\\'" (buffer-name buf))
        (with-current-buffer buf
          (unmask-put "stderr" (buffer-substring-no-properties (max (point-min) (- (point-max) 3000))
                                                               (point-max))))))
    (ignore-errors
      (when server
        (with-timeout (5 nil)
          (eglot-shutdown server nil 3))
        (unmask-put "shutdown" (not (jsonrpc-running-p server)))))
    (unmask-write-report)
    (dolist (dir unmask-temporary)
      (ignore-errors (delete-directory dir t)))
    (kill-emacs 0)))

;;; emacs_completion.el ends here
