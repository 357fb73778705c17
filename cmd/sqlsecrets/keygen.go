package main

import (
	"context"
	"fmt"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

var keygenCommand = &command{
	name:     "keygen",
	synopsis: "",
	summary:  "print a new random master key",
	help: `Keygen prints a new random master key, 32 bytes from the system's secure
random source, as "base64:" and the bytes in standard base64, followed by a
newline. Put it in SECRETS_KEY; to move existing secrets to it, put the old
key in SECRETS_PREVIOUS_KEYS and run 'sqlsecrets rotate'.

Keygen needs no database and no key variable. The key goes to standard
output only: store it where the application's other secrets live, since
whoever holds it can read every secret, and losing it loses them all.
`,
	run: runKeygen,
}

func runKeygen(_ context.Context, c *cli, args []string) error {
	fs := c.flagSet()
	rest, err := c.parse(fs, args, "", 1)
	if err != nil {
		return err
	}
	if err := c.noArgs(rest); err != nil {
		return err
	}

	key, err := secrets.GenerateKey()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, key)
	return err
}
