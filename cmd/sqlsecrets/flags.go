package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/sqlsecrets/sqlsecrets/rotation"
)

// This file reads the arguments of a command: its flags, then its
// positional arguments. Any argument may be a secret value typed in the
// wrong place, so no message here repeats the text of an argument: it
// says the argument's position, and names a flag only when the command
// defines that flag. The flag package's own messages quote what they
// were given, so parse reads the arguments itself and uses the flag set
// only to look flags up and to set them.

// parse reads the flags at the start of args and returns the positional
// arguments after them. It takes what the flag package takes: -name and
// --name, a value as -name=value or as the next argument, and for a
// boolean flag only -name or -name=true|false; "--" ends the flags, and
// "-" alone is positional.
//
// Flags go before the positional arguments, as with every Go command: an
// argument that looks like a flag after them is a usage error, except in
// the first free positional arguments, which are data that may start with
// '-' (KEY, and set's value). what names the first positional argument
// ("KEY", "FILE") for messages, or is "" when there is none.
func (c *cli) parse(fs *flag.FlagSet, args []string, what string, free int) ([]string, error) {
	i := 0
	for i < len(args) {
		a := args[i]
		if a == "--" {
			return args[i+1:], nil // all that follows is positional
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		n, err := c.parseFlag(fs, args, i, what)
		if err != nil {
			return nil, err
		}
		i += n
	}

	rest := args[i:]
	for j := free; j < len(rest); j++ {
		if looksLikeFlag(rest[j]) {
			return nil, c.flagAfter(fs, rest[j], i+j+1, what)
		}
	}
	return rest, nil
}

// parseFlag sets the flag of args[i], with its value from the same or the
// next argument, and returns how many arguments it used.
func (c *cli) parseFlag(fs *flag.FlagSet, args []string, i int, what string) (int, error) {
	pos := i + 1 // arguments are counted from 1, after the command's name
	name, ok := flagPart(args[i])
	if !ok {
		return 0, usageError(fmt.Sprintf("argument %d is not a flag: a flag is -name or --name",
			pos), c.flagsHint(what))
	}
	name, value, hasValue := strings.Cut(name, "=")
	f := fs.Lookup(name)
	if f == nil && (name == "h" || name == "help") {
		c.commandHelp(c.stdout, fs)
		return 0, errHelpShown
	}
	if f == nil {
		return 0, usageError(fmt.Sprintf("argument %d is not a flag of %s", pos, c.cmd.name),
			c.flagsHint(what))
	}

	used := 1
	if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
		if !hasValue {
			value = "true"
		}
		if fs.Set(name, value) != nil {
			return 0, usageError(fmt.Sprintf("invalid value for --%s (argument %d)", name, pos),
				fmt.Sprintf("--%s is a switch: give it alone, or as --%s=true or --%s=false",
					name, name, name))
		}
		return used, nil
	}
	if !hasValue {
		if i+1 == len(args) {
			return 0, usageError(fmt.Sprintf("flag --%s (argument %d) needs a value", name, pos),
				c.helpHint())
		}
		value, used = args[i+1], 2
	}
	if err := fs.Set(name, value); err != nil {
		if e, ok := errors.AsType[*exitError](err); ok {
			return 0, e // a value type's own message, which says what may be shown
		}
		return 0, usageError(fmt.Sprintf("invalid value for --%s (argument %d)", name, pos),
			c.helpHint())
	}
	return used, nil
}

// flagPart returns a without its one or two leading dashes, and whether
// what is left can be a flag: a name, not empty and not starting with
// '-' or '='.
func flagPart(a string) (string, bool) {
	name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
	ok := len(a) >= 2 && a[0] == '-' && name != "" && name[0] != '-' && name[0] != '='
	return name, ok
}

// flagAfter is the error for the argument a, at position pos, that looks
// like a flag but comes after the positional arguments.
func (c *cli) flagAfter(fs *flag.FlagSet, a string, pos int, what string) error {
	if what == "" {
		what = "the arguments"
	}
	msg := fmt.Sprintf("argument %d starts with '-' but comes after %s", pos, what)
	if name, ok := flagPart(a); ok {
		name, _, _ = strings.Cut(name, "=")
		if fs.Lookup(name) != nil {
			msg = fmt.Sprintf("flag --%s (argument %d) comes after %s", name, pos, what)
		}
	}
	hint := fmt.Sprintf("flags go before %s: sqlsecrets %s %s", what, c.cmd.name, c.cmd.synopsis)
	if d := dashHint(what); d != "" {
		hint += "; " + d
	}
	return usageError(msg, hint)
}

// flagsHint is the hint for an argument that is not a flag of the command.
func (c *cli) flagsHint(what string) string {
	h := fmt.Sprintf("run 'sqlsecrets %s --help' for its flags", c.cmd.name)
	if d := dashHint(what); d != "" {
		h += "; " + d
	}
	return h
}

// dashHint says how to pass a positional argument what that starts with
// '-', or returns "" for a command whose arguments never do.
func dashHint(what string) string {
	if what != "KEY" && what != "FILE" {
		return ""
	}
	return "for a " + what + " that starts with '-', put -- before it"
}

// helpHint points at the current command's help.
func (c *cli) helpHint() string {
	return fmt.Sprintf("run 'sqlsecrets %s --help' for usage", c.cmd.name)
}

// looksLikeFlag reports whether a looks like a flag rather than a value:
// "-x" or "--x", but not "-", "-1" or "-0.5".
func looksLikeFlag(a string) bool {
	if len(a) < 2 || a[0] != '-' {
		return false
	}
	return a[1] < '0' || a[1] > '9'
}

// noArgs refuses positional arguments for a command that takes none. It
// does not repeat them: one could be a value typed in the wrong place.
func (c *cli) noArgs(rest []string) error {
	if len(rest) > 0 {
		return usageError(fmt.Sprintf("%s takes no arguments, got %d", c.cmd.name, len(rest)),
			c.helpHint())
	}
	return nil
}

// ownerFlag is the value of --owner: a record id, 0 or more. An owner id
// is not secret, so its errors show the value, escaped.
type ownerFlag struct {
	id  int64
	set bool
}

func (o *ownerFlag) String() string {
	if o == nil || !o.set {
		return ""
	}
	return strconv.FormatInt(o.id, 10)
}

func (o *ownerFlag) Set(s string) error {
	id, err := parseOwner(s)
	if err != nil {
		return usageError(fmt.Sprintf("invalid --owner %s: %v", strconv.QuoteToASCII(s), err),
			"--owner takes a record id such as 42; leave it out for a secret with no owner")
	}
	o.id, o.set = id, true
	return nil
}

// parseOwner parses an owner id: decimal digits only, so no sign, no
// spaces and no base prefix.
func parseOwner(s string) (int64, error) {
	if !isDigits(s) {
		if s == "" {
			return 0, errors.New("empty")
		}
		return 0, errors.New("not a whole number 0 or more")
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errors.New("too large")
	}
	return id, nil
}

// boundedFlag is the value of a numeric flag such as --batch: a whole
// number from min to max, the library's own limits. The bounds are checked
// here, before anything connects. Such a number is not secret: its errors
// show the value, escaped.
type boundedFlag struct {
	name     string
	n        int
	min, max int
}

// registerBatch adds --batch to fs, with the default def and the largest
// value max.
func registerBatch(fs *flag.FlagSet, def, max int, usage string) *int {
	return registerBounded(fs, "batch", def, 1, max, usage)
}

// registerWorkers adds --workers to fs, for rotate and verify.
func registerWorkers(fs *flag.FlagSet) *int {
	return registerBounded(fs, "workers", 0, 0, rotation.MaxWorkers,
		"`N` connections that claim chunks of ids (0: one pass)")
}

// registerBounded adds the flag name to fs, a whole number from min to
// max with the default def.
func registerBounded(fs *flag.FlagSet, name string, def, min, max int, usage string) *int {
	b := &boundedFlag{name: name, n: def, min: min, max: max}
	fs.Var(b, name, fmt.Sprintf("%s, %d to %d", usage, min, max))
	return &b.n
}

func (b *boundedFlag) String() string {
	if b == nil {
		return "0"
	}
	return strconv.Itoa(b.n)
}

func (b *boundedFlag) Set(s string) error {
	var why string
	digits, negative := strings.CutPrefix(s, "-")
	n, err := strconv.ParseInt(digits, 10, 64)
	switch {
	case !isDigits(digits):
		why = "not a whole number"
	case negative && (n > 0 || b.min > 0), !negative && err == nil && n < int64(b.min):
		why = fmt.Sprintf("less than %d", b.min)
	case err != nil || n > int64(b.max):
		why = fmt.Sprintf("more than %d", b.max)
	}
	if why != "" {
		return usageError(fmt.Sprintf("invalid --%s %s: %s", b.name, strconv.QuoteToASCII(s), why),
			fmt.Sprintf("--%s takes a whole number from %d to %d", b.name, b.min, b.max))
	}
	b.n = int(n) // n is 0 for "-0"
	return nil
}

// isDigits reports whether s is one or more ASCII decimal digits.
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
