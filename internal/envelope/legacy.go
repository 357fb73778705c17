package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
)

// LegacyIDSize is the length of the key fingerprint that starts a legacy
// value: the lowercase hex SHA-256 of the master key.
const LegacyIDSize = 64

// Legacy is a value written by the PHP original, split into its parts:
//
//	base64std(hex_lower(sha256(master)) || iv || base64std(AES-256-CBC(master, iv, PKCS#7(json))))
//
// It carries no MAC and no scope, so nothing binds it to its row; it is
// read only to be upgraded.
type Legacy struct {
	ID [LegacyIDSize]byte
	iv []byte
	ct []byte
}

// ParseLegacy splits a legacy value into its parts, or returns ErrInvalid.
func ParseLegacy(value string) (*Legacy, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(value)
	if err != nil || len(raw) < LegacyIDSize+IVSize {
		return nil, ErrInvalid
	}
	ct, err := base64.StdEncoding.Strict().DecodeString(string(raw[LegacyIDSize+IVSize:]))
	if err != nil || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, ErrInvalid
	}

	l := &Legacy{iv: raw[LegacyIDSize : LegacyIDSize+IVSize], ct: ct}
	copy(l.ID[:], raw[:LegacyIDSize])
	return l, nil
}

// LegacyID returns the fingerprint that legacy values written with k carry.
func (k *Key) LegacyID() [LegacyIDSize]byte { return k.legacyID }

// OpenLegacy decrypts a legacy value written with k. Without a MAC, a wrong
// plaintext is caught only by its padding and by the caller's check that
// it is JSON; every failure is ErrInvalid.
func (k *Key) OpenLegacy(l *Legacy) ([]byte, error) {
	if l.ID != k.legacyID {
		return nil, ErrInvalid
	}
	pt := make([]byte, len(l.ct))
	cipher.NewCBCDecrypter(k.legacyBlock, l.iv).CryptBlocks(pt, l.ct)
	return unpad(pt)
}
