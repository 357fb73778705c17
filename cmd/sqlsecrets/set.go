package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

var setCommand = &command{
	name:     "set",
	synopsis: "[--group G] [--owner N] [--string] KEY [JSON]",
	summary:  "store a secret, from an argument or standard input",
	help: `Set stores a secret under KEY in the scope of --group and --owner, replacing
the value that was there. The value is JSON, taken from the JSON argument or,
when that is absent, from standard input. Numbers keep every digit; null, "",
[] and {} are values like any other. Reading standard input keeps the value
out of the process list and the shell history, so prefer it for real secrets:

  sqlsecrets set api_token < token.json
  printf '%s' "$TOKEN" | sqlsecrets set --string api_token

The argument after KEY is always the value, even when it starts with '-':
'sqlsecrets set --string pw -x' stores the string "-x". Only a KEY that
starts with '-' needs -- before it.

With --string, the input is taken as a plain string, not JSON. From standard
input, exactly one trailing newline ("\n", or "\r\n") is removed, the one that
files and echo end with; any other whitespace is kept. Use --string for
multi-line text such as a PEM key.

A value that is not valid JSON is refused with exit status 2; the message
says where the JSON goes wrong, never what it says. Set prints nothing when
it succeeds.
`,
	run: runSet,
}

// maxValueSize is the largest value set reads from standard input.
const maxValueSize = 16 << 20

func runSet(ctx context.Context, c *cli, args []string) error {
	fs := c.flagSet()
	var sf scopeFlags
	sf.register(fs)
	asString := fs.Bool("string", false, "take the value as a plain string instead of JSON")
	rest, err := c.parse(fs, args, "KEY", 2)
	if err != nil {
		return err
	}
	switch {
	case len(rest) == 0:
		return usageError("missing KEY", "sqlsecrets set "+c.cmd.synopsis)
	case len(rest) > 2:
		return usageError(fmt.Sprintf("set takes KEY and at most one value, got %d arguments",
			len(rest)), "quote a value that holds spaces, or pass it on standard input")
	}
	key := rest[0]

	var value any
	if len(rest) == 2 {
		value, err = parseValue([]byte(rest[1]), *asString, "the JSON argument")
	} else {
		value, err = c.readValue(*asString)
	}
	if err != nil {
		return err
	}

	ring, pool, err := open(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	return c.asUsage(sf.store(ring).Set(ctx, pool, key, value))
}

// readValue reads the value from standard input.
func (c *cli) readValue(asString bool) (any, error) {
	if c.stdinTTY {
		c.note("reading the value from standard input; end it with Ctrl-D")
	}
	in, err := io.ReadAll(io.LimitReader(c.stdin, maxValueSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading standard input: %w", err)
	}
	if len(in) > maxValueSize {
		return nil, usageError(fmt.Sprintf("the value on standard input is larger than %d MiB",
			maxValueSize>>20), "secrets are meant to be small; store large files elsewhere")
	}
	if asString {
		in = trimNewline(in)
	}
	return parseValue(in, asString, "standard input")
}

// parseValue returns what Set is to store for the input in: a string with
// asString, otherwise the JSON text itself, so that numbers keep every
// digit. Its errors say where the JSON breaks, never what it holds.
func parseValue(in []byte, asString bool, from string) (any, error) {
	if asString {
		return string(in), nil
	}
	const hint = `the value must be JSON: quote a string as '"text"', ` +
		`or pass --string to store the input as it is`
	if len(bytes.TrimSpace(in)) == 0 {
		return nil, usageError(from+" is empty, which is not JSON", hint)
	}
	var raw json.RawMessage
	if err := json.Unmarshal(in, &raw); err != nil {
		msg := from + " is not valid JSON"
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			msg += fmt.Sprintf(" (at byte %d)", se.Offset)
		}
		return nil, usageError(msg, hint)
	}
	return raw, nil
}

// trimNewline removes one trailing "\n" or "\r\n" from in.
func trimNewline(in []byte) []byte {
	if out, ok := bytes.CutSuffix(in, []byte("\r\n")); ok {
		return out
	}
	return bytes.TrimSuffix(in, []byte("\n"))
}
