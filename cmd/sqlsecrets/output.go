package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/term"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// This file holds what every command uses to talk to its user: errors
// with an exit status and a hint, notes on standard error, and JSON and
// names on standard output. Nothing here ever receives a secret value.

// exitError is an error with the exit status it ends the run with and a
// hint of what to try. A zero code means "work it out from err".
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError is an error in how the command was called: exit status 2.
func usageError(msg, hint string) error {
	return &exitError{code: exitUsage, err: errors.New(msg), hint: hint}
}

// withHint adds a hint to err, keeping the exit status that err implies.
func withHint(err error, hint string) error {
	return &exitError{err: err, hint: hint}
}

// asUsage turns an invalid argument caught by the library (an empty or too
// long key or group) into a usage error; other errors pass unchanged. The
// usage error leaves out the scope and key that the library's error
// names: a key refused for its length is as likely a value typed where
// KEY goes.
func (c *cli) asUsage(err error) error {
	if !errors.Is(err, secrets.ErrInvalidArgument) {
		return err
	}
	if oe, ok := errors.AsType[*secrets.OpError](err); ok {
		err = fmt.Errorf("%s: %w", oe.Op, oe.Err)
	}
	return &exitError{code: exitUsage, err: err, hint: c.helpHint()}
}

// fail prints err and its hint, if any, and returns the exit status err
// implies. A nil err is success.
func (c *cli) fail(err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(c.stderr, "sqlsecrets: error: %s\n", terminalSafe(err.Error()))
	if h := hintFor(err); h != "" {
		fmt.Fprintf(c.stderr, "sqlsecrets: hint: %s\n", terminalSafe(h))
	}
	return exitCode(err)
}

// terminalSafe returns s with every control or format character written
// as an escape, so that no message can move the cursor, change colours or
// reorder text on a terminal, whatever error text it quotes. A line break
// inside an error, as pgx puts between the attempts of a connection,
// becomes "; ".
func terminalSafe(s string) string {
	s = strings.ReplaceAll(s, "\n\t", "; ")
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r) ||
			r == '\u2028' || r == '\u2029':
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// exitCode returns the exit status for err.
func exitCode(err error) int {
	if e, ok := errors.AsType[*exitError](err); ok && e.code != 0 {
		return e.code
	}
	if errors.Is(err, secrets.ErrNotFound) {
		return exitNotFound
	}
	return exitFailure
}

// hintFor returns the hint that err carries, or one for the errors that
// any command can meet.
func hintFor(err error) string {
	if e, ok := errors.AsType[*exitError](err); ok && e.hint != "" {
		return e.hint
	}
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return "check --group and --owner; 'sqlsecrets list --all' shows every scope and key"
	case errors.Is(err, secrets.ErrWrongKey):
		return "it was sealed with a key that is neither SECRETS_KEY nor in SECRETS_PREVIOUS_KEYS"
	case errors.Is(err, secrets.ErrLegacyFormat):
		return "it is in the PHP original's format, which has no MAC; to adopt such a table, " +
			"set " + secrets.EnvReadLegacy + "=true, rotate and verify, then unset it"
	case errors.Is(err, secrets.ErrIntegrity):
		return "the stored value was altered, truncated or copied from another row; " +
			"set it again or restore it from a backup"
	case errors.Is(err, context.Canceled):
		return "interrupted; run the command again to continue"
	case errors.As(err, &pgErr) && pgErr.Code == "42P01": // undefined_table
		return "the secrets table does not exist yet: run 'sqlsecrets migrate'"
	}
	return ""
}

// note prints an informational line on standard error.
func (c *cli) note(format string, args ...any) {
	fmt.Fprintf(c.stderr, "sqlsecrets: "+format+"\n", args...)
}

// writeJSON prints v as one line of JSON on w.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// display returns a group or key for a table column: as it is when it
// is plain, that is ASCII letters, digits and "_-.:" only, and otherwise
// quoted with every character outside printable ASCII escaped, the rule
// of secrets.Name's String and Scope. Any two different names display
// differently: a plain name is its own text and never starts with a
// quote, and a quoted one unquotes to the name. So "café" precomposed and
// decomposed, or Å and the Ångström sign, never print alike. JSON output
// keeps names exact instead.
func display(s string) string {
	if s == "" || strings.IndexFunc(s, notPlain) >= 0 {
		return strconv.QuoteToASCII(s)
	}
	return s
}

// notPlain reports whether r is not one of the characters of a plain
// name. '/' is not, so that "group/owner" reads one way only.
func notPlain(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
		strings.ContainsRune("_-.:", r))
}

// ownerText returns an owner for a table column: its id, or "-".
func ownerText(owner *int64) string {
	if owner == nil {
		return "-"
	}
	return strconv.FormatInt(*owner, 10)
}

// plural returns "1 secret" or "2 secrets".
func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.FormatInt(n, 10) + " " + word + "s"
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
