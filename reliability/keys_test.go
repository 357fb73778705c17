package reliability_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// Kind "keys": master keys as an operator mistypes them into SECRETS_KEY
// and SECRETS_PREVIOUS_KEYS. Each must be refused at start-up with an
// ErrInvalidKey that names the variable (and the entry) and the problem,
// and never shows the key.
//
// These tests set environment variables, so they cannot run in parallel.

// keyTestBytes returns n bytes made from label, for test keys.
func keyTestBytes(label string, n int) []byte {
	var out []byte
	for i := 0; len(out) < n; i++ {
		sum := sha256.Sum256([]byte(label + string(rune('a'+i))))
		out = append(out, sum[:]...)
	}
	return out[:n]
}

// keyTestTexts are valid test keys in every accepted form, all registered
// with the leak watch.
type keyTestTexts struct {
	b64, hex, raw string // three different keys
	b64AsHex      string // the bytes of b64, in hex
	hexUpper      string // hex in capitals: the same key as hex
	rawAsB64      string // the bytes of raw, in base64
	rawComma      string // a raw key with a comma
}

func newKeyTestTexts() keyTestTexts {
	b1, b2 := keyTestBytes("keys-b64", 32), keyTestBytes("keys-hex", 32)
	raw := "raw:s3cr3t-Key-for-reliability!!" // 32 printable bytes
	if len(raw) != 32 {
		panic("the raw test key is not 32 bytes")
	}
	var k keyTestTexts
	k.b64 = secretKey("base64:"+base64.StdEncoding.EncodeToString(b1), b1)
	k.hex = secretKey(hex.EncodeToString(b2), b2)
	k.raw = secretKey(raw, []byte(raw))
	k.b64AsHex = hex.EncodeToString(b1)
	k.hexUpper = strings.ToUpper(k.hex)
	k.rawAsB64 = "base64:" + base64.StdEncoding.EncodeToString([]byte(raw))
	k.rawComma = secretKey("raw,"+raw[4:], []byte("raw,"+raw[4:]))
	return k
}

// keyTestBad returns a registered key text of n characters that is no key:
// distinctive, so that the leak watch would find it.
func keyTestBad(label string, n int) string {
	s := hex.EncodeToString(keyTestBytes("bad-"+label, n))[:n]
	if n >= minNeedle {
		secretValue(s)
	}
	return s
}

// keyTestBadB64 returns a registered "base64:" key of n bytes.
func keyTestBadB64(label string, n int) string {
	b := keyTestBytes("bad-b64-"+label, n)
	return secretKey("base64:"+base64.StdEncoding.EncodeToString(b), b)
}

// keyTestCase is one setting of the two variables and what it must give.
type keyTestCase struct {
	name    string
	current string
	prev    []string // the entries of SECRETS_PREVIOUS_KEYS; nil: unset
	// where the error must name, "" for a keyring that loads; problem is
	// what it must say, in lower case.
	where, problem string
	keys           int // for a keyring that loads: how many keys it holds
}

// keyTestCases are the settings tried. SECRETS_PREVIOUS_KEYS is the
// entries of prev joined with commas.
func keyTestCases(k keyTestTexts) []keyTestCase {
	const cur, pk = "SECRETS_KEY: ", "SECRETS_PREVIOUS_KEYS entry "
	b64body := strings.TrimPrefix(k.b64, "base64:")
	mid := len(b64body) / 2
	return []keyTestCase{
		// Keys that load.
		{name: "base64 alone", current: k.b64, keys: 1},
		{name: "every form", current: k.b64, prev: []string{k.hex, k.raw}, keys: 3},
		{name: "hex in capitals", current: k.hexUpper, prev: []string{k.b64}, keys: 2},
		{name: "previous set but empty", current: k.raw, prev: []string{""}, keys: 1},

		// The current key.
		{name: "unset", where: "SECRETS_KEY is not set", problem: "not set"},
		{name: "empty", current: "", prev: []string{k.hex}, where: "SECRETS_KEY is not set",
			problem: "not set"},
		{name: "1 char", current: "k", where: cur, problem: "got 1 bytes"},
		{name: "31 chars", current: keyTestBad("31", 31), where: cur, problem: "got 31 bytes"},
		{name: "33 chars", current: keyTestBad("33", 33), where: cur, problem: "got 33 bytes"},
		{name: "63 hex chars", current: k.hex[:63], where: cur, problem: "got 63 bytes"},
		{name: "65 hex chars", current: k.hex + "0", where: cur, problem: "got 65 bytes"},
		{name: "64 chars not hex", current: "0x" + k.hex[2:], where: cur, problem: "not hex"},
		{name: "64 chars with g", current: k.hex[:63] + "g", where: cur, problem: "not hex"},
		{name: "base64 of 16 bytes", current: keyTestBadB64("16", 16), where: cur,
			problem: "16 bytes"},
		{name: "base64 of 31 bytes", current: keyTestBadB64("31", 31), where: cur,
			problem: "31 bytes"},
		{name: "base64 of 33 bytes", current: keyTestBadB64("33", 33), where: cur,
			problem: "33 bytes"},
		{name: "base64 of nothing", current: "base64:", where: cur, problem: "0 bytes"},
		{name: "base64 with bad characters", current: "base64:" + strings.Repeat("!", 43) + "=",
			where: cur, problem: "not valid standard base64"},
		{name: "base64 url alphabet", current: "base64:" + strings.NewReplacer("+", "-", "/", "_").
			Replace(b64body[:42]) + "-_=", where: cur, problem: "not valid standard base64"},
		{name: "base64 without padding", current: strings.TrimRight(k.b64, "="), where: cur,
			problem: "not valid standard base64"},
		{name: "base64 with unused bits set", current: "base64:" + b64body[:42] +
			keyTestNonCanonical(b64body[42]) + "=", where: cur,
			problem: "not valid standard base64"},
		{name: "base64 prefix in capitals", current: "BASE64:" + b64body, where: cur,
			problem: "got 51 bytes"},
		{name: "leading space", current: " " + k.b64, where: cur, problem: "whitespace"},
		{name: "trailing newline", current: k.b64 + "\n", where: cur, problem: "whitespace"},
		{name: "trailing CRLF", current: k.hex + "\r\n", where: cur, problem: "whitespace"},
		{name: "leading tab", current: "\t" + k.raw, where: cur, problem: "whitespace"},
		{name: "trailing space on raw", current: k.raw + " ", where: cur, problem: "whitespace"},
		{name: "space inside base64", current: "base64:" + b64body[:mid] + " " + b64body[mid:],
			where: cur, problem: "base64"},
		{name: "tab inside base64", current: "base64:" + b64body[:mid] + "\t" + b64body[mid:],
			where: cur, problem: "base64"},
		// Go's base64 decoder skips '\r' and '\n' even in strict mode. A key
		// has one spelling, as a stored value has (docs/FORMAT.md), and a
		// line break inside a key is a paste gone wrong: refused like a
		// space or a tab.
		{name: "newline inside base64", current: "base64:" + b64body[:mid] + "\n" + b64body[mid:],
			where: cur, problem: "base64"},
		{name: "CRLF inside base64", current: "base64:" + b64body[:mid] + "\r\n" + b64body[mid:],
			where: cur, problem: "base64"},
		{name: "CR inside base64", current: "base64:" + b64body[:mid] + "\r" + b64body[mid:],
			where: cur, problem: "base64"},
		{name: "newline inside hex", current: k.hex[:32] + "\n" + k.hex[32:], where: cur,
			problem: "got 65 bytes"},
		{name: "two keys in SECRETS_KEY", current: k.b64 + "," + k.hex, where: cur,
			problem: "base64"},
		{name: "two keys in SECRETS_KEY, hex first", current: k.hex + "," + k.b64, where: cur,
			problem: "got 116 bytes"},

		// Previous keys.
		{name: "previous equal to current", current: k.b64, prev: []string{k.b64},
			where: pk + "1: ", problem: "same key as secrets_key"},
		{name: "previous equal to current, hex form", current: k.b64, prev: []string{k.b64AsHex},
			where: pk + "1: ", problem: "same key as secrets_key"},
		{name: "previous equal to current, raw form", current: k.rawAsB64, prev: []string{k.raw},
			where: pk + "1: ", problem: "same key as secrets_key"},
		{name: "previous equal to current, hex capitals", current: k.hex,
			prev: []string{k.raw, k.hexUpper}, where: pk + "2: ",
			problem: "same key as secrets_key"},
		{name: "duplicate previous keys", current: k.b64, prev: []string{k.hex, k.raw, k.hex},
			where: pk + "3: ", problem: "same key as secrets_previous_keys entry 1"},
		{name: "empty entry in the middle", current: k.b64, prev: []string{k.hex, "", k.raw},
			where: pk + "2: ", problem: "empty"},
		{name: "trailing comma", current: k.b64, prev: []string{k.hex, ""}, where: pk + "2: ",
			problem: "empty"},
		{name: "leading comma", current: k.b64, prev: []string{"", k.hex}, where: pk + "1: ",
			problem: "empty"},
		{name: "only a comma", current: k.b64, prev: []string{"", ""}, where: pk + "1: ",
			problem: "empty"},
		{name: "space after comma", current: k.b64, prev: []string{k.hex, " " + k.raw},
			where: pk + "2: ", problem: "whitespace"},
		{name: "space before comma", current: k.b64, prev: []string{k.hex + " ", k.raw},
			where: pk + "1: ", problem: "whitespace"},
		{name: "only a space", current: k.b64, prev: []string{" "}, where: pk + "1: ",
			problem: "whitespace"},
		{name: "newline separated", current: k.b64, prev: []string{k.hex + "\n" + k.raw},
			where: pk + "1: ", problem: "bytes"},
		// A raw key may hold a comma; as a previous key it is split, and
		// the pieces are refused, not taken for keys.
		{name: "raw key with a comma", current: k.b64, prev: []string{k.rawComma},
			where: pk + "1: ", problem: "got 3 bytes"},
		{name: "previous of 31 chars", current: k.b64, prev: []string{k.hex, keyTestBad("p31", 31)},
			where: pk + "2: ", problem: "got 31 bytes"},
		{name: "previous base64 of 16 bytes", current: k.b64,
			prev:  []string{keyTestBadB64("p16", 16)},
			where: pk + "1: ", problem: "16 bytes"},
		{name: "newline inside previous base64", current: k.hex,
			prev: []string{"base64:" + b64body[:mid] + "\n" + b64body[mid:]}, where: pk + "1: ",
			problem: "base64"},
	}
}

// keyTestNonCanonical returns the base64 character c with its lowest bit set:
// in the last position before "=", a bit the decoded bytes do not use.
func keyTestNonCanonical(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[i|1])
}

// TestKeysFromEnvironment loads the keyring from SECRETS_KEY and
// SECRETS_PREVIOUS_KEYS set to keys of wrong lengths, stray whitespace,
// bad base64 and hex, duplicates and empty entries, and requires each to
// be refused with an error that names the variable and entry and the
// problem, and holds no key.
func TestKeysFromEnvironment(t *testing.T) {
	f := kind("keys")
	k := newKeyTestTexts()
	t.Setenv(secrets.EnvReadLegacy, "")
	for _, c := range keyTestCases(k) {
		t.Run(c.name, func(t *testing.T) {
			f.cases.Add(1)
			if c.where != "" {
				f.mutations.Add(1)
			}
			t.Setenv(secrets.EnvKey, c.current)
			if c.name == "unset" {
				keyTestUnset(t, secrets.EnvKey)
			}
			t.Setenv(secrets.EnvPreviousKeys, "")
			if c.prev == nil {
				keyTestUnset(t, secrets.EnvPreviousKeys)
			} else {
				t.Setenv(secrets.EnvPreviousKeys, strings.Join(c.prev, ","))
			}
			ring, err := secrets.KeyringFromEnv()
			f.operations.Add(1)
			keyTestCheck(t, f, c, ring, err)
		})
	}
}

// keyTestUnset unsets an environment variable for the rest of the test; the
// caller has called t.Setenv on it, which puts it back afterwards.
func keyTestUnset(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "")
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

// keyTestCheck checks what KeyringFromEnv or NewKeyring returned for c.
func keyTestCheck(t *testing.T, f *figures, c keyTestCase, ring *secrets.Keyring, err error) {
	t.Helper()
	if ring != nil {
		checkLeaks(t, f, "keyring", formatted(ring))
	}
	if c.where == "" {
		if err != nil {
			checkLeaks(t, f, "error", err.Error())
			t.Fatalf("valid keys refused: %v", err)
		}
		if ring.Len() != c.keys {
			t.Errorf("keyring holds %d keys, want %d", ring.Len(), c.keys)
		}
		return
	}
	if err == nil {
		t.Fatalf("keys accepted (a keyring of %d keys); want an error naming %q and %q",
			ring.Len(), c.where, c.problem)
	}
	msg := err.Error()
	checkLeaks(t, f, "error", msg)
	if !errors.Is(err, secrets.ErrInvalidKey) {
		t.Errorf("error %q does not match ErrInvalidKey", msg)
	}
	if !strings.Contains(msg, c.where) {
		t.Errorf("error %q does not name %q", msg, strings.TrimSuffix(c.where, ": "))
	}
	if !strings.Contains(strings.ToLower(msg), c.problem) {
		t.Errorf("error %q does not say %q", msg, c.problem)
	}
}

// TestKeysNewKeyring gives NewKeyring the same mistakes, one key per
// argument: errors name "current key" or "previous key N".
func TestKeysNewKeyring(t *testing.T) {
	f := kind("keys")
	k := newKeyTestTexts()
	for _, c := range keyTestCases(k) {
		if c.name == "unset" || c.name == "previous set but empty" ||
			c.name == "raw key with a comma" {
			continue // only the environment can leave a key unset
		}
		t.Run(c.name, func(t *testing.T) {
			f.cases.Add(1)
			if c.where != "" {
				f.mutations.Add(1)
			}
			ring, err := secrets.NewKeyring(c.current, c.prev...)
			f.operations.Add(1)
			c.where = strings.NewReplacer("SECRETS_KEY is not set", "current key: ",
				"SECRETS_KEY: ", "current key: ", "SECRETS_PREVIOUS_KEYS entry ", "previous key ").
				Replace(c.where)
			c.problem = strings.NewReplacer("secrets_key", "current key", "not set", "empty",
				"secrets_previous_keys entry", "previous key").Replace(c.problem)
			keyTestCheck(t, f, c, ring, err)
		})
	}
}

// keyTestValid reports whether text is a key in one of the accepted forms,
// as the contract states them, without whitespace or line breaks anywhere.
func keyTestValid(text string) bool {
	if text == "" || strings.TrimSpace(text) != text {
		return false
	}
	if rest, ok := strings.CutPrefix(text, "base64:"); ok {
		b, err := base64.StdEncoding.Strict().DecodeString(rest)
		return err == nil && len(b) == 32 && !strings.ContainsAny(rest, "\r\n")
	}
	if len(text) == 64 {
		_, err := hex.DecodeString(text)
		return err == nil
	}
	return len(text) == 32
}

// TestKeysRandomEdits edits valid keys at random (characters deleted,
// inserted, replaced; cut; doubled) and requires NewKeyring to accept
// exactly the texts that are keys, and to refuse every other with an
// ErrInvalidKey that names the key's place and holds no key.
func TestKeysRandomEdits(t *testing.T) {
	f := kind("keys")
	k := newKeyTestTexts()
	rng := rand.New(rand.NewPCG(32, 64))
	cb := keyTestBytes("random-edits-current", 32)
	current := secretKey(hex.EncodeToString(cb), cb) // no edit can spell it
	extra := []string{"A", "=", "+", "/", "-", "_", " ", "\n", "\r", "\t", "g", "0", ",", ":", "é"}
	for i := range scale(300, 50) {
		text := []string{k.b64, k.hex, k.raw}[i%3]
		at, x := rng.IntN(len(text)), extra[rng.IntN(len(extra))]
		var how string
		switch rng.IntN(5) {
		case 0:
			text, how = text[:at]+text[at+1:], fmt.Sprintf("char %d deleted", at)
		case 1:
			text, how = text[:at]+x+text[at:], fmt.Sprintf("%q inserted at %d", x, at)
		case 2:
			text, how = text[:at]+x+text[at+1:], fmt.Sprintf("char %d replaced by %q", at, x)
		case 3:
			text, how = text[:at], fmt.Sprintf("cut to %d chars", at)
		case 4:
			text, how = text+text[at:], fmt.Sprintf("chars from %d repeated", at)
		}
		how = fmt.Sprintf("edit %d of key form %d (%s)", i, i%3, how)
		if len(text) >= 16 {
			secretValue(text)
		}
		f.cases.Add(1)
		f.mutations.Add(1)
		ring, err := secrets.NewKeyring(current, text)
		f.operations.Add(1)
		switch {
		case keyTestValid(text) && err != nil:
			checkLeaks(t, f, "error", err.Error())
			t.Errorf("%s: a valid key was refused: %v", how, err)
		case !keyTestValid(text) && err == nil:
			t.Errorf("%s: a text that is no key was accepted as previous key 1", how)
		case err != nil:
			c := keyTestCase{name: how, where: "previous key 1: "}
			keyTestCheck(t, f, c, ring, err)
		}
	}
}
