package agent

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Agents authenticate each other on the internal listener with the cluster secret (coord's
// cluster/secret) by a challenge-response in which both sides prove they hold it and neither sends
// it (docs/INTERNALS.md):
//
//	dialer   -> listener  "SHI1" | nonce_d [32] | id length uint16 | dialer's agent id
//	listener -> dialer    nonce_l [32] | HMAC-SHA256(secret, labelListener | nonce_d | nonce_l | id)
//	dialer   -> listener  HMAC-SHA256(secret, labelDialer | nonce_d | nonce_l | id)
//	listener -> dialer    0x00
//
// Fresh nonces on both sides make a recorded handshake useless; distinct labels keep the listener's
// proof, which it gives to anyone who connects, from serving as a dialer's.
const (
	handshakeMagic   = "SHI1"
	handshakeNonce   = 32
	handshakeMaxID   = 1024
	handshakeTimeout = 10 * time.Second
	labelListener    = "streamhouse internal v1 listener"
	labelDialer      = "streamhouse internal v1 dialer"
	handshakeOK      = 0
)

// errHandshake: the other side did not prove the cluster secret, or did not follow the handshake.
var errHandshake = errors.New("agent: internal handshake failed")

// handshakeProof is one side's proof of the secret over both nonces and the dialer's id.
func handshakeProof(secret []byte, label string, dialerNonce, listenerNonce []byte, id string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	m.Write(dialerNonce)
	m.Write(listenerNonce)
	m.Write([]byte(id))
	return m.Sum(nil)
}

// acceptHandshake runs the listener's side over rw and returns the dialer's authenticated agent id.
func acceptHandshake(rw io.ReadWriter, secret []byte) (string, error) {
	dialerNonce, id, err := readHello(rw)
	if err != nil {
		return "", err
	}
	listenerNonce := make([]byte, handshakeNonce)
	_, _ = rand.Read(listenerNonce) // crypto/rand.Read never fails (Go ≥ 1.24)
	challenge := append(listenerNonce, handshakeProof(secret, labelListener, dialerNonce, listenerNonce, id)...)
	if _, err := rw.Write(challenge); err != nil {
		return "", err
	}
	proof := make([]byte, sha256.Size)
	if _, err := io.ReadFull(rw, proof); err != nil {
		return "", fmt.Errorf("%w: reading %q's proof: %v", errHandshake, id, err)
	}
	if !hmac.Equal(proof, handshakeProof(secret, labelDialer, dialerNonce, listenerNonce, id)) {
		return "", fmt.Errorf("%w: %q does not hold the cluster secret", errHandshake, id)
	}
	if _, err := rw.Write([]byte{handshakeOK}); err != nil {
		return "", err
	}
	return id, nil
}

// readHello reads the dialer's opening: the magic, its nonce and its agent id.
func readHello(r io.Reader) (nonce []byte, id string, err error) {
	head := make([]byte, len(handshakeMagic)+handshakeNonce+2)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, "", fmt.Errorf("%w: reading the opening: %v", errHandshake, err)
	}
	if string(head[:len(handshakeMagic)]) != handshakeMagic {
		return nil, "", fmt.Errorf("%w: not an agent (opening %x)", errHandshake, head[:len(handshakeMagic)])
	}
	nonce = head[len(handshakeMagic) : len(handshakeMagic)+handshakeNonce]
	n := int(binary.BigEndian.Uint16(head[len(head)-2:]))
	if n == 0 || n > handshakeMaxID {
		return nil, "", fmt.Errorf("%w: agent id of %d bytes", errHandshake, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, "", fmt.Errorf("%w: reading the agent id: %v", errHandshake, err)
	}
	return nonce, string(b), nil
}

// dialHandshake runs the dialer's side over rw as agent id: the listener must prove the secret
// before the dialer proves it in turn.
func dialHandshake(rw io.ReadWriter, secret []byte, id string) error {
	if len(id) == 0 || len(id) > handshakeMaxID {
		return fmt.Errorf("%w: agent id of %d bytes", errHandshake, len(id))
	}
	dialerNonce := make([]byte, handshakeNonce)
	_, _ = rand.Read(dialerNonce)
	hello := append([]byte(handshakeMagic), dialerNonce...)
	hello = binary.BigEndian.AppendUint16(hello, uint16(len(id)))
	if _, err := rw.Write(append(hello, id...)); err != nil {
		return err
	}
	challenge := make([]byte, handshakeNonce+sha256.Size)
	if _, err := io.ReadFull(rw, challenge); err != nil {
		return fmt.Errorf("%w: reading the listener's proof: %v", errHandshake, err)
	}
	listenerNonce := challenge[:handshakeNonce]
	if !hmac.Equal(challenge[handshakeNonce:], handshakeProof(secret, labelListener, dialerNonce, listenerNonce, id)) {
		return fmt.Errorf("%w: the listener does not hold the cluster secret", errHandshake)
	}
	if _, err := rw.Write(handshakeProof(secret, labelDialer, dialerNonce, listenerNonce, id)); err != nil {
		return err
	}
	var ok [1]byte
	if _, err := io.ReadFull(rw, ok[:]); err != nil || ok[0] != handshakeOK {
		return fmt.Errorf("%w: the listener refused this agent's proof", errHandshake)
	}
	return nil
}
