package secrets

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/sqlsecrets/sqlsecrets/internal/envelope"
)

// DefaultGroup is the group of a [Store] that was not given one.
const DefaultGroup = "global"

// MaxNameLen is the most characters a key or group may have.
const MaxNameLen = 150

// Name says where one secret lives: its group, its owner and its key.
type Name struct {
	Group string
	Owner *int64 // nil for a secret with no owner
	Key   string
}

// Scope returns the group and owner as text: "users/42", or "global" for a
// secret with no owner.
func (n Name) Scope() string {
	if n.Owner == nil {
		return n.Group
	}
	return n.Group + "/" + strconv.FormatInt(*n.Owner, 10)
}

// String returns the scope and the quoted key: `users/42 "api_token"`.
func (n Name) String() string {
	return n.Scope() + " " + strconv.Quote(n.Key)
}

// validate checks the group, the owner and, unless scopeOnly, the key.
func (n Name) validate(scopeOnly bool) error {
	if err := checkName("group", n.Group); err != nil {
		return err
	}
	if n.Owner != nil && *n.Owner < 0 {
		return fmt.Errorf("%w: owner %d is negative", ErrInvalidArgument, *n.Owner)
	}
	if scopeOnly {
		return nil
	}
	return checkName("key", n.Key)
}

func checkName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: %s is empty", ErrInvalidArgument, what)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidArgument, what)
	case utf8.RuneCountInString(s) > MaxNameLen:
		return fmt.Errorf("%w: %s has %d characters, more than %d",
			ErrInvalidArgument, what, utf8.RuneCountInString(s), MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return fmt.Errorf("%w: %s contains NUL", ErrInvalidArgument, what)
		}
	}
	return nil
}

func (n Name) envelope() envelope.Scope {
	sc := envelope.Scope{Group: n.Group, Key: n.Key}
	if n.Owner != nil {
		sc.Owner, sc.HasOwner = *n.Owner, true
	}
	return sc
}
