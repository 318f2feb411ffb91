package media

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// SRTP for RTP packets with AEAD_AES_128_GCM / AEAD_AES_256_GCM (RFC 7714),
// on the fast path's packet loop.
//
// pion/srtp's Context does the same work, but per packet it goes through
// an SSRC map, an interface per detail (tag lengths, ROC-in-tag, cryptex,
// MKI) and, with replay protection, a detector object per SSRC: under load,
// when a call's state is cold in the cache 20 ms after its last packet,
// that bookkeeping cost about as much as the AES-GCM itself. rtpGCM keeps
// one flat state per direction of a leg: the AEAD, the session salt, the
// nonce scratch and up to rtpGCMSSRCs SSRC states (index, replay window) in
// one array. It derives the session keys from the master key and salt as
// RFC 3711 §4.3 / RFC 7714 §11 say (the AES-CM PRF, labels 0x00 and 0x02),
// exactly as pion/srtp does (TestRTPGCMInterop checks both ways, across a
// sequence-number wrap). SRTCP stays with pion/srtp (one packet per second
// per leg), and so do the other profiles (AES_CM_128_HMAC_SHA1_80/32).
type rtpGCM struct {
	// in the order a packet uses them
	aead    cipher.AEAD
	tagSize int
	replay  bool // receive side: refuse replayed and too-old packets
	n       int  // states in use
	states  [rtpGCMSSRCs]rtpSSRCState
	salt    [12]byte
	iv      [12]byte // nonce scratch: a local array would escape through the interface call
	next    int      // the state replaced when all are in use and a new SSRC authenticates
}

// rtpGCMSSRCs is how many SSRCs a direction of a leg keeps state for: one
// stream each way, plus our second track (side legs) and a remote that
// changed its SSRC (a browser's renegotiation).
const rtpGCMSSRCs = 4

// rtpReplayWindow is the replay window (packets), as Pion's sessions.
const rtpReplayWindow = 64

// rtpSSRCState is one SSRC's packet index (ROC << 16 | highest sequence
// number) and, receiving, which of the rtpReplayWindow indexes below it
// arrived (bit i: index - i).
type rtpSSRCState struct {
	ssrc   uint32
	index  uint64
	window uint64
}

var (
	errSRTPShort  = errors.New("media: srtp packet too short")
	errSRTPAuth   = errors.New("media: srtp authentication failed")
	errSRTPReplay = errors.New("media: srtp packet replayed or too old")
)

// isGCM reports whether p is an AEAD profile rtpGCM handles.
func isGCM(p srtp.ProtectionProfile) bool {
	return p == srtp.ProtectionProfileAeadAes128Gcm || p == srtp.ProtectionProfileAeadAes256Gcm
}

// newRTPGCM makes one direction's RTP state from the DTLS-exported master
// key and salt; replay: the receiving direction.
func newRTPGCM(profile srtp.ProtectionProfile, masterKey, masterSalt []byte, replay bool) (*rtpGCM, error) {
	c := new(rtpGCM)
	if err := c.init(profile, masterKey, masterSalt, replay); err != nil {
		return nil, err
	}
	return c, nil
}

// init is newRTPGCM in place (the fast path allocates a leg's two states
// with the leg, so that they are next to it in memory).
func (c *rtpGCM) init(profile srtp.ProtectionProfile, masterKey, masterSalt []byte, replay bool) error {
	if !isGCM(profile) {
		return fmt.Errorf("%w: profile %v is not AEAD-GCM", ErrFastPath, profile)
	}
	keyLen, err := profile.KeyLen()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFastPath, err)
	}
	saltLen, err := profile.SaltLen()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFastPath, err)
	}
	if len(masterKey) != keyLen || len(masterSalt) != saltLen || saltLen != 12 {
		return fmt.Errorf("%w: master key %d / salt %d bytes for %v", ErrFastPath, len(masterKey), len(masterSalt), profile)
	}
	key, err := srtpKDF(0x00, masterKey, masterSalt, keyLen)
	if err != nil {
		return err
	}
	salt, err := srtpKDF(0x02, masterKey, masterSalt, saltLen)
	if err != nil {
		return err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFastPath, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFastPath, err)
	}
	*c = rtpGCM{aead: aead, replay: replay, tagSize: aead.Overhead()}
	copy(c.salt[:], salt)
	return nil
}

// srtpKDF is the SRTP key derivation (RFC 3711 §4.3.1 with a key
// derivation rate of 0, the AES-CM PRF of §4.3.3): AES in counter mode,
// keyed by the master key, over the master salt with the label at byte 7.
func srtpKDF(label byte, masterKey, masterSalt []byte, n int) ([]byte, error) {
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFastPath, err)
	}
	var in [16]byte
	copy(in[:], masterSalt)
	in[7] ^= label
	out := make([]byte, (n+15)/16*16)
	for i := 0; i*16 < n; i++ {
		binary.BigEndian.PutUint16(in[14:], uint16(i))
		block.Encrypt(out[i*16:], in[:])
	}
	return out[:n], nil
}

// state returns ssrc's state, or nil.
func (c *rtpGCM) state(ssrc uint32) *rtpSSRCState {
	for i := range c.n {
		if c.states[i].ssrc == ssrc {
			return &c.states[i]
		}
	}
	return nil
}

// add makes a state for ssrc (replacing the oldest-added when full).
func (c *rtpGCM) add(ssrc uint32, index uint64) *rtpSSRCState {
	var s *rtpSSRCState
	if c.n < len(c.states) {
		s = &c.states[c.n]
		c.n++
	} else {
		s = &c.states[c.next]
		c.next = (c.next + 1) % len(c.states)
	}
	*s = rtpSSRCState{ssrc: ssrc, index: index, window: 1}
	return s
}

// guessIndex is the packet index of sequence number seq given the highest
// index so far (RFC 3711 Appendix A: the ROC is the one that puts seq
// nearest to the highest).
func guessIndex(highest uint64, seq uint16) uint64 {
	roc, s := highest>>16, uint16(highest)
	switch {
	case s < 1<<15 && int(seq)-int(s) > 1<<15 && roc > 0:
		roc--
	case s >= 1<<15 && int(s)-1<<15 > int(seq):
		roc++
	}
	return roc<<16 | uint64(seq)
}

// setIV writes the nonce of RFC 7714 §8.1: 00 00 | SSRC | ROC | SEQ, XOR
// the session salt.
func (c *rtpGCM) setIV(ssrc uint32, index uint64) {
	binary.BigEndian.PutUint16(c.iv[0:], 0)
	binary.BigEndian.PutUint32(c.iv[2:], ssrc)
	binary.BigEndian.PutUint32(c.iv[6:], uint32(index>>16))
	binary.BigEndian.PutUint16(c.iv[10:], uint16(index))
	for i := range c.iv {
		c.iv[i] ^= c.salt[i]
	}
}

// decrypt authenticates and decrypts SRTP packet pkt in place, parsing its
// header into h, and returns the plain packet (header + payload) within
// pkt. The SSRC state is created or advanced only once the packet is
// authentic; a replayed or too-old packet is refused before any crypto.
func (c *rtpGCM) decrypt(pkt []byte, h *rtp.Header) ([]byte, error) {
	hl, err := h.Unmarshal(pkt)
	if err != nil {
		return nil, err
	}
	if len(pkt) < hl+c.tagSize {
		return nil, errSRTPShort
	}
	st := c.state(h.SSRC)
	index := uint64(h.SequenceNumber)
	if st != nil {
		index = guessIndex(st.index, h.SequenceNumber)
		if c.replay && index <= st.index {
			d := st.index - index
			if d >= rtpReplayWindow || st.window&(1<<d) != 0 {
				return nil, errSRTPReplay
			}
		}
	}
	c.setIV(h.SSRC, index)
	out, err := c.aead.Open(pkt[hl:hl], c.iv[:], pkt[hl:], pkt[:hl])
	if err != nil {
		return nil, errSRTPAuth
	}
	switch {
	case st == nil:
		c.add(h.SSRC, index)
	case index > st.index:
		if d := index - st.index; d < rtpReplayWindow {
			st.window = st.window<<d | 1
		} else {
			st.window = 1
		}
		st.index = index
	default:
		st.window |= 1 << (st.index - index)
	}
	return pkt[:hl+len(out)], nil
}

// encrypt appends to hdr (a marshalled RTP header of ssrc/seq, at the start
// of a buffer with room for the payload and the tag) the encrypted payload
// and the tag, and returns the SRTP packet.
func (c *rtpGCM) encrypt(hdr []byte, ssrc uint32, seq uint16, payload []byte) []byte {
	st := c.state(ssrc)
	var index uint64
	if st == nil {
		index = uint64(seq)
		c.add(ssrc, index)
	} else {
		index = guessIndex(st.index, seq)
		if index > st.index {
			st.index = index
		}
	}
	c.setIV(ssrc, index)
	return c.aead.Seal(hdr, c.iv[:], payload, hdr)
}
