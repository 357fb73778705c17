package secrets

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
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
// secret with no owner. A group with other characters than ASCII letters,
// digits, '_', '-', '.' and ':' is quoted with non-ASCII escaped, so that
// two different names never read the same (café composed or decomposed,
// say) and no name can break a log line.
func (n Name) Scope() string {
	g := n.Group
	if strings.IndexFunc(g, notPlain) >= 0 || g == "" {
		g = strconv.QuoteToASCII(g)
	}
	if n.Owner == nil {
		return g
	}
	return g + "/" + strconv.FormatInt(*n.Owner, 10)
}

func notPlain(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
		strings.ContainsRune("_-.:", r))
}

// String returns the scope and the quoted key, non-ASCII escaped:
// `users/42 "api_token"`.
func (n Name) String() string {
	return n.Scope() + " " + strconv.QuoteToASCII(n.Key)
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
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: %s contains NUL", ErrInvalidArgument, what)
	}
	return nil
}

// nameKey identifies a secret as a map key. Unlike String, it cannot
// confuse group "a/1" with group "a" and owner 1.
type nameKey struct {
	group, key string
	owner      int64
	hasOwner   bool
}

// compare orders names by group, owner (none first) and key.
func (k nameKey) compare(o nameKey) int {
	return cmp.Or(
		strings.Compare(k.group, o.group),
		cmp.Compare(btoi(k.hasOwner), btoi(o.hasOwner)),
		cmp.Compare(k.owner, o.owner),
		strings.Compare(k.key, o.key),
	)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (n Name) key() nameKey {
	k := nameKey{group: n.Group, key: n.Key}
	if n.Owner != nil {
		k.owner, k.hasOwner = *n.Owner, true
	}
	return k
}

func (n Name) envelope() envelope.Scope {
	sc := envelope.Scope{Group: n.Group, Key: n.Key}
	if n.Owner != nil {
		sc.Owner, sc.HasOwner = *n.Owner, true
	}
	return sc
}
