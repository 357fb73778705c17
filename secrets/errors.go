package secrets

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors. Match them with errors.Is; the errors that carry them
// also name the operation, the scope and the key.
var (
	// ErrNotFound is returned by Get, GetJSON and GetAs when no secret is
	// stored under the key in the scope. A stored null is not an error.
	ErrNotFound = errors.New("secret not found")

	// ErrWrongKey is returned when a stored value was sealed with a master
	// key that is not in the keyring: the key id, or the legacy
	// fingerprint, matches none of its keys. It also matches ErrIntegrity,
	// so that one errors.Is(err, ErrIntegrity) catches every value that
	// does not open; its own message points at the keyring, the usual
	// cause being a previous key left out of SECRETS_PREVIOUS_KEYS.
	ErrWrongKey error = wrongKeyError{}

	// ErrLegacyFormat is returned for a value in the PHP original's format
	// when the keyring does not read that format (see
	// Keyring.WithLegacyReads). Such values carry no MAC, so they are not
	// trusted by default. It also matches ErrIntegrity.
	ErrLegacyFormat error = legacyError{}

	// ErrIntegrity is returned when a stored value fails authentication:
	// it was altered, truncated, corrupted or copied from another scope.
	// Every such case is this one error; it does not say which check
	// failed.
	ErrIntegrity = errors.New("integrity check failed: value altered, corrupted or moved")

	// ErrExists is returned by Sealed.Insert when a secret of the set is
	// stored already; Insert then wrote nothing.
	ErrExists = errors.New("secret exists already")

	// ErrInvalidArgument is returned, before any SQL runs, for a key or
	// group that is empty, longer than 150 characters, not valid UTF-8 or
	// holds NUL; a negative owner; a value that cannot be encoded as JSON,
	// holds text that is not valid UTF-8, or is larger or deeper than
	// MaxValueSize and MaxValueDepth; and a nil or zero keyring.
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrInvalidKey is returned by NewKeyring and KeyringFromEnv
	// for a master key in none of the accepted encodings, and for a
	// keyring that holds the same key twice. It never includes the key.
	ErrInvalidKey = errors.New("invalid master key")

	// ErrDuplicateKey is returned by NewKeyring and KeyringFromEnv for a
	// key given twice, in the same encoding or another. It also matches
	// ErrInvalidKey.
	ErrDuplicateKey = fmt.Errorf("%w: the same key twice", ErrInvalidKey)
)

type wrongKeyError struct{}

func (wrongKeyError) Error() string { return "sealed with a key that is not in the keyring" }

// Is makes a wrong key match ErrIntegrity as well.
func (wrongKeyError) Is(target error) bool { return target == ErrIntegrity }

type legacyError struct{}

func (legacyError) Error() string {
	return "value in the PHP original's format, which has no MAC; it opens only with legacy reads on"
}

// Is makes a legacy value match ErrIntegrity as well.
func (legacyError) Is(target error) bool { return target == ErrIntegrity }

// OpError is the error that Store methods return. It names the operation,
// the scope and the key, and wraps the cause; it never holds a value.
type OpError struct {
	Op   string // "get", "set", "delete" or "list"
	Name Name   // the scope, and the key where the operation has one
	Err  error
}

// Error returns, for example, `get users/42 "api_token": secret not found`.
func (e *OpError) Error() string {
	s := e.Op + " " + e.Name.Scope()
	if e.Name.Key != "" {
		s += " " + strconv.QuoteToASCII(e.Name.Key)
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *OpError) Unwrap() error { return e.Err }

// IndexError is returned by SetMany for an entry that cannot be written.
type IndexError struct {
	Index int // the entry, counting from 0
	Err   error
}

// Error returns "entry N: " and the cause.
func (e *IndexError) Error() string { return "entry " + strconv.Itoa(e.Index) + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *IndexError) Unwrap() error { return e.Err }
