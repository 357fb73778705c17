// Command sqlsecrets manages the secrets that an application keeps
// encrypted in its own PostgreSQL database.
//
// Usage:
//
//	sqlsecrets COMMAND [FLAGS] [ARGS]
//
// The commands are:
//
//	keygen    print a new random master key
//	migrate   apply or roll back the secrets table migration, or show its status
//	set       store a secret, from an argument or standard input
//	get       print a secret as JSON, or as a plain string with --string
//	delete    remove a secret
//	list      list secrets by scope and key, with their times, never values
//	import    load secrets from JSON Lines
//	rotate    re-encrypt every secret with the current key
//	verify    check that every secret opens with the keyring
//
// Run "sqlsecrets COMMAND --help" for the flags of one command. Flags go
// before positional arguments; the value argument of set may start with
// '-', and a KEY that does needs "--" before it.
//
// The command reads its configuration from the environment, never from
// flags, so that no key shows up in a process list or a shell history:
//
//	DATABASE_URL           the PostgreSQL connection URL (every command but keygen)
//	SECRETS_KEY            the current master key (set, get, import, rotate, verify)
//	SECRETS_PREVIOUS_KEYS  older master keys, comma-separated, that can still decrypt
//
// A master key is "base64:" and 32 bytes in standard base64 (what keygen
// prints), 64 hex characters, or a raw string of 32 bytes.
//
// Values go to standard output and nothing else does; messages, hints and
// progress go to standard error. No message contains a secret value, a
// key or the password of DATABASE_URL.
//
// Exit status:
//
//	0  success
//	1  failure: a database error, a value that does not open, failed rows
//	2  usage: an unknown command or flag, missing or extra arguments, an
//	   invalid JSON value, a bad owner, or a missing or invalid
//	   DATABASE_URL, SECRETS_KEY or SECRETS_PREVIOUS_KEYS
//	3  not found: get or delete of a secret that does not exist
package main
