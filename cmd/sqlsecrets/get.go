package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

var getCommand = &command{
	name:     "get",
	synopsis: "[--group G] [--owner N] [--string] KEY",
	summary:  "print a secret as JSON, or as a plain string with --string",
	help: `Get prints the secret stored under KEY in the scope of --group and --owner,
as JSON followed by a newline, exactly as it was set: numbers keep every
digit, and a stored null prints null.

With --string, a string value is printed as it is, not as JSON, followed by
a newline; a value that is not a string is an error (exit status 1).

A secret that does not exist is exit status 3. A value that does not open,
because it was sealed with a key missing from SECRETS_KEY and
SECRETS_PREVIOUS_KEYS or because it was altered, is exit status 1. In both
cases nothing is printed on standard output.
`,
	run: runGet,
}

func runGet(ctx context.Context, c *cli, args []string) error {
	fs := c.flagSet()
	var sf scopeFlags
	sf.register(fs)
	asString := fs.Bool("string", false, "print a string value as plain text instead of JSON")
	key, err := c.parseKey(fs, args)
	if err != nil {
		return err
	}

	ring, pool, err := open(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := sf.store(ring)
	raw, err := store.GetJSON(ctx, pool, key)
	if err != nil {
		return c.asUsage(err)
	}

	if !*asString {
		_, err = fmt.Fprintf(c.stdout, "%s\n", raw)
		return err
	}
	var s string
	if kind := jsonKind(raw); kind != "a string" || json.Unmarshal(raw, &s) != nil {
		return withHint(
			&secrets.OpError{Op: "get", Name: store.Name(key),
				Err: fmt.Errorf("--string: the value is %s, not a string", kind)},
			"leave out --string to print the value as JSON")
	}
	_, err = fmt.Fprintln(c.stdout, s)
	return err
}

// parseKey parses the flags of get and delete and returns KEY, their one
// positional argument.
func (c *cli) parseKey(fs *flag.FlagSet, args []string) (string, error) {
	rest, err := c.parse(fs, args, "KEY", 1)
	if err != nil {
		return "", err
	}
	switch {
	case len(rest) == 0:
		return "", usageError("missing KEY", "sqlsecrets "+c.cmd.name+" "+c.cmd.synopsis)
	case len(rest) > 1:
		return "", usageError(fmt.Sprintf("%s takes one KEY, got %d arguments", c.cmd.name,
			len(rest)), "quote a key that holds spaces")
	}
	return rest[0], nil
}

// jsonKind names the kind of the JSON value raw from its first byte,
// without looking at the value itself.
func jsonKind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "empty"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}
