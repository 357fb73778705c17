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
	"hash"
	"io"
	"strings"
	"sync"
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

	// states holds *state values for this key, so that a Seal or Open
	// neither allocates an HMAC or a CBC mode nor hashes the padded MAC
	// key again.
	states sync.Pool

	// legacyID and legacyBlock read the PHP original's envelope.
	legacyID    [64]byte
	legacyBlock cipher.Block
}

// state is what one Seal or Open of a Key works with: an HMAC-SHA256 keyed
// with the Key's MAC key, CBC modes over its cipher, and scratch buffers.
// In the pool it is always reset: the HMAC holds the keyed state only, and
// the buffers hold public bytes (a MAC input header, a ciphertext), never
// a plaintext.
type state struct {
	mac hash.Hash
	enc cipher.BlockMode // nil when the mode cannot be given a new IV
	dec cipher.BlockMode // likewise
	hdr []byte           // "v1." || kid || scope
	raw []byte           // kid || iv || ct || tag, while Seal builds it
	sum [TagSize]byte
}

// ivSetter is implemented by the CBC modes of crypto/cipher, which can
// then be reused with a new IV instead of made anew for every value.
type ivSetter interface{ SetIV(iv []byte) }

// maxPooledBuf is the largest scratch buffer that goes back to the pool,
// so that a rare large value does not keep its buffer alive.
const maxPooledBuf = 16 << 10

// getState returns a reset state from the pool, or a new one.
func (k *Key) getState() *state {
	if st, ok := k.states.Get().(*state); ok {
		return st
	}
	st := &state{mac: hmac.New(sha256.New, k.mac[:])}
	// The first Reset saves the keyed inner and outer states, which every
	// later Reset restores without hashing the padded key again.
	st.mac.Reset()

	var zero [IVSize]byte
	if m := cipher.NewCBCEncrypter(k.block, zero[:]); isIVSetter(m) {
		st.enc = m
	}
	if m := cipher.NewCBCDecrypter(k.block, zero[:]); isIVSetter(m) {
		st.dec = m
	}
	return st
}

// isIVSetter reports whether the mode m can be given a new IV.
func isIVSetter(m cipher.BlockMode) bool {
	_, ok := m.(ivSetter)
	return ok
}

// putState resets st and returns it to the pool.
func (k *Key) putState(st *state) {
	st.mac.Reset()
	if cap(st.hdr) > maxPooledBuf {
		st.hdr = nil
	}
	if cap(st.raw) > maxPooledBuf {
		st.raw = nil
	}
	k.states.Put(st)
}

// encrypter returns a CBC encrypter with the IV iv.
func (st *state) encrypter(k *Key, iv []byte) cipher.BlockMode {
	if st.enc == nil {
		return cipher.NewCBCEncrypter(k.block, iv)
	}
	st.enc.(ivSetter).SetIV(iv)
	return st.enc
}

// decrypter returns a CBC decrypter with the IV iv.
func (st *state) decrypter(k *Key, iv []byte) cipher.BlockMode {
	if st.dec == nil {
		return cipher.NewCBCDecrypter(k.block, iv)
	}
	st.dec.(ivSetter).SetIV(iv)
	return st.dec
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
	st := k.getState()
	defer k.putState(st)

	// The IV is read straight into its place in the envelope.
	raw := st.envelope(k, len(plaintext))
	if _, err := io.ReadFull(rand, raw[KIDSize:KIDSize+IVSize]); err != nil {
		return "", fmt.Errorf("envelope: reading random IV: %w", err)
	}
	return k.seal(st, sc, plaintext, raw)
}

// SealWithIV is Seal with a given IV. It exists for known-answer tests: an
// IV must never be used twice, so real writes go through Seal.
func (k *Key) SealWithIV(sc Scope, plaintext []byte, iv [IVSize]byte) (string, error) {
	st := k.getState()
	defer k.putState(st)

	raw := st.envelope(k, len(plaintext))
	copy(raw[KIDSize:KIDSize+IVSize], iv[:])
	return k.seal(st, sc, plaintext, raw)
}

// envelope returns st's raw buffer sized for a plaintext of n bytes, with
// the kid in place and room for the IV, the ciphertext and the tag.
func (st *state) envelope(k *Key, n int) []byte {
	size := KIDSize + IVSize + n + aes.BlockSize - n%aes.BlockSize + TagSize
	if cap(st.raw) < size {
		st.raw = make([]byte, size)
	}
	raw := st.raw[:size]
	copy(raw, k.kid[:])
	return raw
}

// seal encrypts plaintext into raw, which holds the kid and the IV and has
// room for the rest, appends the tag and returns the v1 value.
func (k *Key) seal(st *state, sc Scope, plaintext, raw []byte) (string, error) {
	if len(sc.Group) > MaxNameLen || len(sc.Key) > MaxNameLen {
		return "", errors.New("envelope: group or key too long to bind")
	}

	iv := raw[KIDSize : KIDSize+IVSize]
	ct := raw[KIDSize+IVSize : len(raw)-TagSize]
	n := copy(ct, plaintext)
	padLen := len(ct) - n
	for i := n; i < len(ct); i++ {
		ct[i] = byte(padLen)
	}
	st.encrypter(k, iv).CryptBlocks(ct, ct)

	k.tag(st, sc, iv, ct)
	copy(raw[len(raw)-TagSize:], st.sum[:])
	return encodeV1(raw), nil
}

// encodeV1 returns Prefix followed by the base64 of raw: the stored
// value, built in one allocation.
func encodeV1(raw []byte) string {
	var b strings.Builder
	b.Grow(len(Prefix) + encoding.EncodedLen(len(raw)))
	b.WriteString(Prefix)

	// Whole groups of 3 bytes encode to 4 characters with no padding, so
	// encoding raw a chunk at a time gives the same text as all at once.
	var chunk [4 * 64]byte
	for len(raw) > 0 {
		n := min(len(raw), 3*64)
		m := encoding.EncodedLen(n)
		encoding.Encode(chunk[:m], raw[:n])
		b.Write(chunk[:m])
		raw = raw[n:]
	}
	return b.String()
}

// tag computes the HMAC over "v1." || kid || scope || iv || ct into st.sum.
func (k *Key) tag(st *state, sc Scope, iv, ct []byte) {
	st.hdr = append(st.hdr[:0], Prefix...)
	st.hdr = append(st.hdr, k.kid[:]...)
	st.hdr = appendScope(st.hdr, sc)
	st.mac.Write(st.hdr)
	st.mac.Write(iv)
	st.mac.Write(ct)
	st.mac.Sum(st.sum[:0])
}

// appendScope appends sc encoded so that it parses one way only:
// u16be(len(group)) || group || u8(has owner) || u64be(owner) || u16be(len(key)) || key.
func appendScope(b []byte, sc Scope) []byte {
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
	if !ok || strings.IndexByte(body, '\r') >= 0 || strings.IndexByte(body, '\n') >= 0 {
		return nil, ErrInvalid
	}
	raw, err := decodeString(body)
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

// decodeString is encoding.DecodeString without the copy of s that
// DecodeString makes: it decodes s a chunk at a time through a buffer on
// the stack. Every chunk but the last is whole groups of 4 characters,
// which decode on their own to the bytes they stand for in s, so the
// result and the errors are those of DecodeString for a text without line
// breaks (which the decoder would skip and Parse refuses).
func decodeString(s string) ([]byte, error) {
	raw := make([]byte, encoding.DecodedLen(len(s)))
	var chunk [4 * 64]byte
	n := 0
	for len(s) > 0 {
		c := copy(chunk[:], s)
		m, err := encoding.Decode(raw[n:], chunk[:c])
		if err != nil {
			return nil, err
		}
		n += m
		s = s[c:]
	}
	return raw[:n], nil
}

// Open authenticates s for the scope sc and returns its plaintext. The tag
// is checked, in constant time, before anything is decrypted; every
// failure is ErrInvalid.
func (k *Key) Open(sc Scope, s *Sealed) ([]byte, error) {
	if s.KID != k.kid || len(sc.Group) > MaxNameLen || len(sc.Key) > MaxNameLen {
		return nil, ErrInvalid
	}
	st := k.getState()
	defer k.putState(st)

	k.tag(st, sc, s.iv, s.ct)
	if !hmac.Equal(st.sum[:], s.tag) {
		return nil, ErrInvalid
	}

	pt := make([]byte, len(s.ct))
	st.decrypter(k, s.iv).CryptBlocks(pt, s.ct)
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
