"""Silent AC-3 and E-AC-3 syncframes (ATSC A/52 and its Annex E), written bit by bit: gaps
in a publisher's AC-3 or E-AC-3 sound are filled with frames of its own configuration, as
AAC, MPEG audio and Opus gaps are.

Each of a frame's six audio blocks codes every channel with no mantissa bits: the SNR
offsets are all zero, which A/52's bit allocation takes as no bits for any mantissa, and
dither is off, so a decoder reconstructs every coefficient as 0 and outputs 1,536
samples of zeros per channel (checked with ffmpeg's decoder, CRC checks on, and
liba52). The exponents (needed before any allocation) are the coarsest strategy over
the narrowest bandwidth. A frame keeps the publisher's sample rate, bit rate, channel
mode and LFE; its CRCs are right, for decoders that check them.
"""

from __future__ import annotations

from functools import lru_cache

from golive.formats.codecs.bits import BitWriter

__all__ = ["AC3_FRAME_SAMPLES", "ac3_silent_frame", "crc16", "eac3_silent_frame"]

AC3_FRAME_SAMPLES = 1536  # per channel: six blocks of 256
_FULL_CHANNELS = (2, 1, 2, 3, 3, 4, 4, 5)  # by acmod (1+1, 1/0, 2/0, 3/0, 2/1, 3/1, 2/2, 3/2)
_BLOCKS = 6
_EXP_REUSE, _EXP_D45 = 0, 3
_CHBWCOD = 0  # the narrowest bandwidth: end mantissa 73
_ZERO_DELTAS = 62  # a group of three exponent deltas of 0 (each coded 2: 2*25 + 2*5 + 2)
_CRC_POLY = 0x8005  # x^16 + x^15 + x^2 + 1


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ _CRC_POLY) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """A/52's CRC-16 (x^16 + x^15 + x^2 + 1, MSB first, no reflection, initial value 0),
    which FLAC's frames end with too."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


_POLY = 0x18005  # the CRC's generator with its x^16 term, for arithmetic modulo it
_X_INVERSE = 0xC002  # x^15 + x^14 + x: x times it is x^16 + x^15 + x^2, 1 modulo _POLY


def _mulmod(a: int, b: int) -> int:
    """a * b modulo the generator, polynomials over GF(2) as bits."""
    product = 0
    while b:
        if b & 1:
            product ^= a
        b >>= 1
        a <<= 1
        if a & 0x10000:
            a ^= _POLY
    return product


def _powmod(base: int, exponent: int) -> int:
    result = 1
    while exponent:
        if exponent & 1:
            result = _mulmod(result, base)
        base = _mulmod(base, base)
        exponent >>= 1
    return result


def _crc16_padded(data: bytes, length: int) -> int:
    """The CRC of `data` followed by zeros up to `length` bytes: each zero byte multiplies
    the register by x^8 (initial value 0, no final XOR), so the run is one power."""
    return _mulmod(crc16(data), _powmod(2, 8 * (length - len(data))))


def _crc1_for(data: bytes, length: int) -> int:
    """The 16 bits that, put before `data` padded with zeros to `length` bytes, make the
    CRC over both zero (A/52's crc1 precedes the 5/8 of the frame it protects). The CRC
    of the two bytes c then n zero bytes is c * x^(8n + 16); it must equal the data's,
    so c is the data's CRC times x^-(8n + 16)."""
    return _mulmod(_crc16_padded(data, length), _powmod(_X_INVERSE, 8 * length + 16))


@lru_cache(maxsize=64)
def ac3_silent_frame(fscod: int, frmsizecod: int, frame_bytes: int, acmod: int,
                     lfeon: bool) -> bytes | None:
    """A silent syncframe with this sample rate code, frame size code (and its length in
    bytes), channel mode and LFE; None when its side information would not fit the frame
    (only at bit rates below what the channels need)."""
    if not 0 <= fscod < 3 or not 0 <= frmsizecod < 38 or not 0 <= acmod < 8:
        return None
    channels = _FULL_CHANNELS[acmod]
    b = BitWriter()
    b.put(fscod, 2)
    b.put(frmsizecod, 6)
    # bsi (A/52 5.4.2)
    b.put(8, 5)  # bsid
    b.put(0, 3)  # bsmod: complete main
    b.put(acmod, 3)
    if acmod & 1 and acmod != 1:
        b.put(0, 2)  # cmixlev
    if acmod & 4:
        b.put(0, 2)  # surmixlev
    if acmod == 2:
        b.put(0, 2)  # dsurmod
    b.put(int(lfeon), 1)
    for _ in range(2 if acmod == 0 else 1):  # (1+1: a second programme's set)
        b.put(31, 5)  # dialnorm -31 dB: no adjustment
        b.put(0, 3)  # compre, langcode, audprodie
    b.put(0, 1)  # copyrightb
    b.put(1, 1)  # origbs
    b.put(0, 3)  # timecod1e, timecod2e, addbsie
    # audblk x 6 (A/52 5.4.3)
    for block in range(_BLOCKS):
        first = block == 0
        b.put(0, channels)  # blksw: long transforms
        b.put(0, channels)  # dithflag: no dither, so a mantissa without bits is 0
        b.put(0, 2 if acmod == 0 else 1)  # dynrnge (and dynrng2e)
        b.put(int(first), 1)  # cplstre
        if first:
            b.put(0, 1)  # cplinu: no coupling
        if acmod == 2:
            b.put(int(first), 1)  # rematstr
            if first:
                b.put(0, 4)  # rematflg, four bands without coupling
        strategy = _EXP_D45 if first else _EXP_REUSE
        for _ in range(channels):
            b.put(strategy, 2)  # chexpstr
        if lfeon:
            b.put(int(first), 1)  # lfeexpstr
        if first:
            _put_exponents(b, channels, lfeon)
        b.put(int(first), 1)  # baie
        if first:
            b.put(2, 2)  # sdcycod
            b.put(1, 2)  # fdcycod
            b.put(1, 2)  # sgaincod
            b.put(2, 2)  # dbpbcod
            b.put(7, 3)  # floorcod
        b.put(int(first), 1)  # snroffste
        if first:
            b.put(0, 6)  # csnroffst 0 ...
            for _ in range(channels + int(lfeon)):
                b.put(0, 4)  # ... and fsnroffst 0: no mantissa gets a bit
                b.put(4, 3)  # fgaincod
        b.put(0, 1)  # deltbaie: no delta bit allocation
        b.put(0, 1)  # skiple
    written = _written(b, frame_bytes - 4)  # after syncword and crc1
    if written is None:
        return None
    covered = ((frame_bytes >> 2) + (frame_bytes >> 4)) << 1  # 5/8 of the frame, in bytes
    crc1 = _crc1_for(written[: covered - 4], covered - 4).to_bytes(2, "big")
    return _framed(b"\x0b\x77" + crc1, written, frame_bytes)


@lru_cache(maxsize=64)
def eac3_silent_frame(fscod: int, blocks: int, frame_bytes: int, acmod: int,
                      lfeon: bool) -> bytes | None:
    """A silent E-AC-3 (A/52 Annex E) independent syncframe of six blocks with this
    sample rate code (48, 44.1 or 32 kHz), channel mode and LFE, as long in time as
    `blocks` blocks of `frame_bytes` bytes (the bit rate kept); None for a reduced rate
    or when its side information would not fit."""
    if not 0 <= fscod < 3 or blocks not in (1, 2, 3, 6) or not 0 <= acmod < 8:
        return None
    size = min(frame_bytes * _BLOCKS // blocks, 4096) & ~1
    if size < 64:
        return None
    channels = _FULL_CHANNELS[acmod]
    b = BitWriter()
    # bsi (A/52 E.1.2.2)
    b.put(0, 2)  # strmtyp: independent
    b.put(0, 3)  # substreamid
    b.put(size // 2 - 1, 11)  # frmsiz: words, less one
    b.put(fscod, 2)
    b.put(3, 2)  # numblkscod: six blocks
    b.put(acmod, 3)
    b.put(int(lfeon), 1)
    b.put(16, 5)  # bsid
    for _ in range(2 if acmod == 0 else 1):
        b.put(31, 5)  # dialnorm
        b.put(0, 1)  # compre
    b.put(0, 3)  # mixmdate, infomdate, addbsie
    # audfrm (E.1.2.3)
    b.put(1, 1)  # expstre: AC-3 style exponent strategies
    b.put(0, 1)  # ahte
    b.put(0, 2)  # snroffststr: one SNR offset for the frame ...
    b.put(0, 1)  # transproce
    b.put(0, 1)  # blkswe
    b.put(1, 1)  # dithflage: dither flags are sent (absent, every channel dithers)
    b.put(0, 5)  # bamode, frmfgaincode, dbaflde, skipflde, spxattene
    if acmod > 1:
        b.put(0, 1)  # cplinu in block 0 ...
        b.put(0, _BLOCKS - 1)  # ... and no new coupling strategy after it
    for block in range(_BLOCKS):
        for _ in range(channels):
            b.put(_EXP_D45 if block == 0 else _EXP_REUSE, 2)  # chexpstr
    if lfeon:
        b.put(1, 1)  # lfeexpstr: D15 in block 0 ...
        b.put(0, _BLOCKS - 1)  # ... reused after
    b.put(0, 5 * channels)  # convexpstr
    b.put(0, 6)  # frmcsnroffst 0 ...
    b.put(0, 4)  # ... and frmfsnroffst 0: no mantissa gets a bit
    b.put(0, 1)  # blkstrtinfoe
    # audblk x 6 (E.1.2.4)
    for block in range(_BLOCKS):
        first = block == 0
        b.put(0, channels)  # dithflag: no dither
        b.put(0, 2 if acmod == 0 else 1)  # dynrnge (and dynrng2e)
        b.put(0, 1)  # spxinu in block 0 (its strategy always comes), then spxstre
        if acmod == 2:
            if first:
                b.put(0, 4)  # rematflg (block 0: the strategy always comes)
            else:
                b.put(0, 1)  # rematstr
        if first:
            _put_exponents(b, channels, lfeon)
        b.put(0, 1)  # convsnroffste
    written = _written(b, size - 2)  # after the syncword
    if written is None:
        return None
    return _framed(b"\x0b\x77", written, size)


def _put_exponents(b: BitWriter, channels: int, lfeon: bool) -> None:
    """Block 0's bandwidth codes and exponents: D45 for each full channel, D15 for the
    LFE, every exponent 15 (a first one, then deltas of 0)."""
    for _ in range(channels):
        b.put(_CHBWCOD, 6)
    groups = (37 + 3 * (_CHBWCOD + 12) + 8) // 12  # D45 over end mantissa 73
    for _ in range(channels):
        b.put(15, 4)
        for _ in range(groups):
            b.put(_ZERO_DELTAS, 7)
        b.put(0, 2)  # gainrng
    if lfeon:
        b.put(15, 4)
        b.put(_ZERO_DELTAS, 7)
        b.put(_ZERO_DELTAS, 7)


def _written(b: BitWriter, room: int) -> bytes | None:
    """The written bits to a whole byte; None if, with auxdatae 0, crcrsv 0 and crc2
    after them, they do not fit in `room` bytes."""
    return None if b.width + 2 + 16 > room * 8 else b.to_bytes()


def _framed(head: bytes, written: bytes, length: int) -> bytes:
    """head + written, zeros (auxiliary bits, auxdatae, crcrsv) up to crc2, then crc2: the
    CRC of all after the syncword."""
    start = head + written
    crc2 = _crc16_padded(start[2:], length - 4)
    return start + bytes(length - 2 - len(start)) + crc2.to_bytes(2, "big")
