// Package envelope holds the exact bytes of the sqlsecrets storage format:
// the authenticated v1 envelope that every write produces, and the legacy
// envelope of the PHP original, which is only ever read.
//
// The format is published in docs/FORMAT.md. Everything here is pure
// computation: no I/O, no logging, no retained plaintext.
package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Sizes of the parts of a v1 envelope, in bytes.
const (
	KeySize = 32 // a master key
	KIDSize = 8  // the key id
	IVSize  = aes.BlockSize
	TagSize = sha256.Size
)

// Prefix starts every v1 value. Standard base64, which the legacy format
// uses, has no '.', so the two formats cannot be confused.
const Prefix = "v1."

// MaxNameLen is the largest group or key, in bytes, that a scope can bind:
// its length prefix has 16 bits. The table's 150 characters stay far below.
const MaxNameLen = 0xFFFF

// ErrInvalid is returned for every value that does not open: a bad tag, a
// bad length, bad padding, bad base64 or an unknown prefix. It says nothing
// about which check failed.
var ErrInvalid = errors.New("envelope: invalid")

var encoding = base64.RawURLEncoding.Strict()

// Scope is what a value is bound to: the row's group, owner and key.
type Scope struct {
	Group    string
	Owner    int64
	HasOwner bool
	Key      string
}

// Key is one master key with the subkeys derived from it. It is safe for
// concurrent use.
type Key struct {
	kid   [KIDSize]byte
	block cipher.Block
	mac   [32]byte

	// legacyID and legacyBlock read the PHP original's envelope.
	legacyID    [64]byte
	legacyBlock cipher.Block
}

// NewKey derives the subkeys of a 32-byte master key. The caller may clear
// master afterwards; Key keeps no reference to it.
func NewKey(master []byte) (*Key, error) {
	if len(master) != KeySize {
		return nil, fmt.Errorf("envelope: key is %d bytes, want %d", len(master), KeySize)
	}

	var k Key
	kid, err := derive(master, "sqlsecrets/v1/kid", KIDSize)
	if err != nil {
		return nil, err
	}
	copy(k.kid[:], kid)

	enc, err := derive(master, "sqlsecrets/v1/enc", 32)
	if err != nil {
		return nil, err
	}
	if k.block, err = aes.NewCipher(enc); err != nil {
		return nil, err
	}

	mac, err := derive(master, "sqlsecrets/v1/mac", 32)
	if err != nil {
		return nil, err
	}
	copy(k.mac[:], mac)

	sum := sha256.Sum256(master)
	hexLower(k.legacyID[:], sum[:])
	if k.legacyBlock, err = aes.NewCipher(master); err != nil {
		return nil, err
	}
	return &k, nil
}

func derive(master []byte, info string, n int) ([]byte, error) {
	return hkdf.Key(sha256.New, master, nil, info, n)
}

// ID returns the key id that v1 values sealed with k carry.
func (k *Key) ID() [KIDSize]byte { return k.kid }

// Seal encrypts plaintext for the scope sc with a fresh IV read from rand
// and returns the v1 value to store.
func (k *Key) Seal(sc Scope, plaintext []byte, rand io.Reader) (string, error) {
	var iv [IVSize]byte
	if _, err := io.ReadFull(rand, iv[:]); err != nil {
		return "", fmt.Errorf("envelope: reading random IV: %w", err)
	}
	return k.SealWithIV(sc, plaintext, iv)
}

// SealWithIV is Seal with a given IV. It exists for known-answer tests: an
// IV must never be used twice, so real writes go through Seal.
func (k *Key) SealWithIV(sc Scope, plaintext []byte, iv [IVSize]byte) (string, error) {
	if len(sc.Group) > MaxNameLen || len(sc.Key) > MaxNameLen {
		return "", errors.New("envelope: group or key too long to bind")
	}

	padLen := aes.BlockSize - len(plaintext)%aes.BlockSize
	raw := make([]byte, 0, KIDSize+IVSize+len(plaintext)+padLen+TagSize)
	raw = append(raw, k.kid[:]...)
	raw = append(raw, iv[:]...)
	ctStart := len(raw)
	raw = append(raw, plaintext...)
	for range padLen {
		raw = append(raw, byte(padLen))
	}
	ct := raw[ctStart:]
	cipher.NewCBCEncrypter(k.block, iv[:]).CryptBlocks(ct, ct)

	raw = append(raw, k.tag(sc, iv[:], ct)...)
	return Prefix + encoding.EncodeToString(raw), nil
}

// tag computes the HMAC over "v1." || kid || scope || iv || ct.
func (k *Key) tag(sc Scope, iv, ct []byte) []byte {
	m := hmac.New(sha256.New, k.mac[:])
	m.Write([]byte(Prefix))
	m.Write(k.kid[:])
	m.Write(scopeBytes(sc))
	m.Write(iv)
	m.Write(ct)
	return m.Sum(nil)
}

// scopeBytes encodes sc so that it parses one way only:
// u16be(len(group)) || group || u8(has owner) || u64be(owner) || u16be(len(key)) || key.
func scopeBytes(sc Scope) []byte {
	b := make([]byte, 0, 2+len(sc.Group)+1+8+2+len(sc.Key))
	b = binary.BigEndian.AppendUint16(b, uint16(len(sc.Group)))
	b = append(b, sc.Group...)
	owner := uint64(0)
	if sc.HasOwner {
		b = append(b, 1)
		owner = uint64(sc.Owner)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint64(b, owner)
	b = binary.BigEndian.AppendUint16(b, uint16(len(sc.Key)))
	return append(b, sc.Key...)
}

// Sealed is a v1 value split into its parts, not yet authenticated.
type Sealed struct {
	KID [KIDSize]byte
	iv  []byte
	ct  []byte
	tag []byte
}

// Parse splits a stored v1 value into its parts. It checks the prefix, the
// base64 and the lengths, and returns ErrInvalid for anything else.
func Parse(value string) (*Sealed, error) {
	body, ok := strings.CutPrefix(value, Prefix)
	// The base64 decoder skips '\r' and '\n' even in strict mode; refuse
	// them, so that a value has one spelling only.
	if !ok || strings.ContainsAny(body, "\r\n") {
		return nil, ErrInvalid
	}
	raw, err := encoding.DecodeString(body)
	if err != nil {
		return nil, ErrInvalid
	}
	ctLen := len(raw) - KIDSize - IVSize - TagSize
	if ctLen < aes.BlockSize || ctLen%aes.BlockSize != 0 {
		return nil, ErrInvalid
	}

	s := &Sealed{
		iv:  raw[KIDSize : KIDSize+IVSize],
		ct:  raw[KIDSize+IVSize : KIDSize+IVSize+ctLen],
		tag: raw[KIDSize+IVSize+ctLen:],
	}
	copy(s.KID[:], raw[:KIDSize])
	return s, nil
}

// Open authenticates s for the scope sc and returns its plaintext. The tag
// is checked, in constant time, before anything is decrypted; every
// failure is ErrInvalid.
func (k *Key) Open(sc Scope, s *Sealed) ([]byte, error) {
	if s.KID != k.kid || len(sc.Group) > MaxNameLen || len(sc.Key) > MaxNameLen {
		return nil, ErrInvalid
	}
	if !hmac.Equal(k.tag(sc, s.iv, s.ct), s.tag) {
		return nil, ErrInvalid
	}

	pt := make([]byte, len(s.ct))
	cipher.NewCBCDecrypter(k.block, s.iv).CryptBlocks(pt, s.ct)
	return unpad(pt)
}

// unpad strips PKCS#7 padding. It runs after authentication, so its timing
// reveals nothing an attacker could not already compute; it is constant
// time over the last block anyway.
func unpad(pt []byte) ([]byte, error) {
	n := len(pt)
	if n == 0 || n%aes.BlockSize != 0 {
		return nil, ErrInvalid
	}
	pad := pt[n-1]
	good := subtle.ConstantTimeLessOrEq(1, int(pad)) &
		subtle.ConstantTimeLessOrEq(int(pad), aes.BlockSize)
	for i := 1; i <= aes.BlockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, int(pad))
		same := subtle.ConstantTimeByteEq(pt[n-i], pad)
		good &= same | (inPad ^ 1)
	}
	if good != 1 {
		return nil, ErrInvalid
	}
	return pt[:n-int(pad)], nil
}

func hexLower(dst, src []byte) {
	const digits = "0123456789abcdef"
	for i, b := range src {
		dst[2*i] = digits[b>>4]
		dst[2*i+1] = digits[b&0x0f]
	}
}

// Format prints a placeholder for every verb, so that a Key formatted by
// mistake shows no key material.
func (k *Key) Format(f fmt.State, _ rune) { io.WriteString(f, "envelope.Key(redacted)") }
