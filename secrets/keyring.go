package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/sqlsecrets/sqlsecrets/internal/envelope"
)

// The environment variables that KeyringFromEnv reads.
const (
	EnvKey          = "SECRETS_KEY"
	EnvPreviousKeys = "SECRETS_PREVIOUS_KEYS"

	// EnvReadLegacy, set to true, makes the keyring open values in the PHP
	// original's format as well; see Keyring.WithLegacyReads.
	EnvReadLegacy = "SECRETS_READ_LEGACY"
)

// Keyring holds the master keys: the current key, which seals every write,
// and previous keys, which still open the values they sealed. It is
// immutable and safe for concurrent use. It never shows its keys: String,
// GoString, Format and LogValue print only how many it holds.
//
// The zero Keyring holds no key; every call that needs one fails with
// ErrInvalidArgument.
type Keyring struct {
	// keys sits behind a pointer so that fmt, which cannot call the
	// methods of a Keyring held in another struct's unexported field,
	// prints an address there rather than key-derived bytes.
	keys *keys

	// legacy makes Open read the PHP original's format.
	legacy bool
}

type keys struct {
	current  *envelope.Key
	byKID    map[[envelope.KIDSize]byte]*envelope.Key
	byLegacy map[[envelope.LegacyIDSize]byte]*envelope.Key
	rand     io.Reader
}

// errNoKeys is returned by a zero or nil Keyring.
var errNoKeys = fmt.Errorf("%w: keyring holds no key; make one with NewKeyring or KeyringFromEnv",
	ErrInvalidArgument)

// usable returns the keys, or errNoKeys for a nil or zero Keyring.
func (r *Keyring) usable() (*keys, error) {
	if r == nil || r.keys == nil {
		return nil, errNoKeys
	}
	return r.keys, nil
}

// GenerateKey returns a new random master key in the form that
// SECRETS_KEY accepts: "base64:" followed by 32 random bytes in standard
// base64.
func GenerateKey() (string, error) {
	var k [envelope.KeySize]byte
	if _, err := io.ReadFull(rand.Reader, k[:]); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return "base64:" + base64.StdEncoding.EncodeToString(k[:]), nil
}

// parseKey decodes one master key: "base64:" and 32 bytes in standard
// base64, 64 hex characters, or a raw string of exactly 32 bytes. Its
// errors state what it got, never the key.
func parseKey(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if strings.TrimSpace(s) != s {
		return nil, fmt.Errorf("%w: has leading or trailing whitespace", ErrInvalidKey)
	}
	if rest, ok := strings.CutPrefix(s, "base64:"); ok {
		// The decoder would skip line breaks; a key has one spelling only.
		if strings.ContainsAny(rest, " \t\r\n") {
			return nil, fmt.Errorf("%w: base64: form contains whitespace or a line break", ErrInvalidKey)
		}
		b, err := base64.StdEncoding.Strict().DecodeString(rest)
		if err != nil {
			return nil, fmt.Errorf("%w: base64: form is not valid standard base64", ErrInvalidKey)
		}
		if len(b) != envelope.KeySize {
			return nil, fmt.Errorf("%w: base64: form decodes to %d bytes, want %d",
				ErrInvalidKey, len(b), envelope.KeySize)
		}
		return b, nil
	}
	if len(s) == 2*envelope.KeySize {
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: 64 characters but not hex", ErrInvalidKey)
		}
		return b, nil
	}
	if len(s) != envelope.KeySize {
		return nil, fmt.Errorf("%w: got %d bytes; want 32 raw bytes, 64 hex characters "+
			"or base64: and 32 bytes in base64", ErrInvalidKey, len(s))
	}
	return []byte(s), nil
}

// NewKeyring returns a keyring whose current key is current and which can
// also open values sealed with any of previous. Each key is in one of the
// forms that SECRETS_KEY accepts. The same key given twice is an error.
func NewKeyring(current string, previous ...string) (*Keyring, error) {
	names := make([]string, 1+len(previous))
	names[0] = "current key"
	for i := range previous {
		names[i+1] = fmt.Sprintf("previous key %d", i+1)
	}
	return newKeyring(names, append([]string{current}, previous...))
}

// KeyringFromEnv builds a keyring from SECRETS_KEY (required) and
// SECRETS_PREVIOUS_KEYS (optional, comma-separated), with legacy reads
// when SECRETS_READ_LEGACY is true. Errors name the variable and the
// position of the bad entry, never the key.
func KeyringFromEnv() (*Keyring, error) {
	legacy := false
	if v := os.Getenv(EnvReadLegacy); v != "" {
		var err error
		if legacy, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("%s: %w: want true or false", EnvReadLegacy, ErrInvalidArgument)
		}
	}
	r, err := keyringFromEnv()
	if err != nil || !legacy {
		return r, err
	}
	return r.WithLegacyReads(), nil
}

func keyringFromEnv() (*Keyring, error) {
	current, ok := os.LookupEnv(EnvKey)
	if !ok || current == "" {
		return nil, fmt.Errorf("%s is not set: %w", EnvKey, ErrInvalidKey)
	}
	texts := []string{current}
	names := []string{EnvKey}
	if prev := os.Getenv(EnvPreviousKeys); prev != "" {
		for i, p := range strings.Split(prev, ",") {
			texts = append(texts, p)
			names = append(names, fmt.Sprintf("%s entry %d", EnvPreviousKeys, i+1))
		}
	}
	return newKeyring(names, texts)
}

func newKeyring(names, texts []string) (*Keyring, error) {
	r := &keys{
		byKID:    make(map[[envelope.KIDSize]byte]*envelope.Key, len(texts)),
		byLegacy: make(map[[envelope.LegacyIDSize]byte]*envelope.Key, len(texts)),
		rand:     rand.Reader,
	}
	seen := make(map[[envelope.KIDSize]byte]string, len(texts))
	for i, text := range texts {
		master, err := parseKey(text)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", names[i], err)
		}
		k, err := envelope.NewKey(master)
		clear(master)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", names[i], err)
		}
		if first, dup := seen[k.ID()]; dup {
			return nil, fmt.Errorf("%s: %w: the same key as %s", names[i], ErrDuplicateKey, first)
		}
		seen[k.ID()] = names[i]
		if i == 0 {
			r.current = k
		}
		r.byKID[k.ID()] = k
		r.byLegacy[k.LegacyID()] = k
	}
	return &Keyring{keys: r}, nil
}

// WithLegacyReads returns a keyring like r that also opens values written
// by the PHP original, so that an adopted table can be read and rotated to
// the v1 format. Those values carry no MAC and no scope: whoever can write
// to the table can swap them between rows or alter them undetected while
// legacy reads are on. Turn them on to migrate, rotate, check with
// rotation.Verify that no legacy row is left, and turn them off.
func (r *Keyring) WithLegacyReads() *Keyring {
	c := *r
	c.legacy = true
	return &c
}

// IsLegacy reports whether a stored value is in the PHP original's format
// rather than v1. It looks at the format only; it does not open the value.
func IsLegacy(stored string) bool { return !strings.HasPrefix(stored, envelope.Prefix) }

// Len returns how many keys the ring holds, the current one included.
func (r Keyring) Len() int {
	if r.keys == nil {
		return 0
	}
	return len(r.keys.byKID)
}

// Seal encrypts the JSON text plaintext for the secret n with the current
// key and returns the value to store. Rotation uses it; applications use
// Store.Set.
func (r *Keyring) Seal(n Name, plaintext []byte) (string, error) {
	k, err := r.usable()
	if err != nil {
		return "", err
	}
	if err := n.validate(false); err != nil {
		return "", err
	}
	return k.current.Seal(n.envelope(), plaintext, k.rand)
}

// Open authenticates and decrypts the stored value of the secret n and
// returns its JSON text. current reports whether the value is sealed in
// the v1 format with the current key, so that it needs no rotation. The
// error is ErrWrongKey when no key of the ring sealed it, ErrLegacyFormat
// for a value in the PHP original's format without legacy reads, and
// ErrIntegrity for anything altered, truncated or moved; all three match
// ErrIntegrity.
func (r *Keyring) Open(n Name, stored string) (plaintext []byte, current bool, err error) {
	// A row whose name the table should not hold (written by hand, say)
	// is not trusted either.
	if err := n.validate(false); err != nil {
		return nil, false, err
	}
	return r.open(n, stored)
}

// open is Open for a name that has been validated.
func (r *Keyring) open(n Name, stored string) (plaintext []byte, current bool, err error) {
	ks, err := r.usable()
	if err != nil {
		return nil, false, err
	}
	if strings.HasPrefix(stored, envelope.Prefix) {
		s, err := envelope.Parse(stored)
		if err != nil {
			return nil, false, ErrIntegrity
		}
		k := ks.byKID[s.KID]
		if k == nil {
			return nil, false, ErrWrongKey
		}
		pt, err := k.Open(n.envelope(), s)
		if err != nil || !validJSON(pt) {
			return nil, false, ErrIntegrity
		}
		return pt, k == ks.current, nil
	}

	l, err := envelope.ParseLegacy(stored)
	if err != nil {
		return nil, false, ErrIntegrity
	}
	if !r.legacy {
		return nil, false, ErrLegacyFormat
	}
	k := ks.byLegacy[l.ID]
	if k == nil {
		return nil, false, ErrWrongKey
	}
	pt, err := k.OpenLegacy(l)
	if err != nil || !validJSON(pt) {
		return nil, false, ErrIntegrity
	}
	return pt, false, nil
}

// String describes the ring without its keys.
func (r Keyring) String() string {
	if r.Len() == 1 {
		return "secrets.Keyring(1 key, redacted)"
	}
	return fmt.Sprintf("secrets.Keyring(%d keys, redacted)", r.Len())
}

// GoString is String, so that %#v shows no key material either.
func (r Keyring) GoString() string { return r.String() }

// Format prints String for every verb, %x and %q included.
func (r Keyring) Format(f fmt.State, _ rune) { io.WriteString(f, r.String()) }

// LogValue is String, for log/slog.
func (r Keyring) LogValue() slog.Value { return slog.StringValue(r.String()) }
